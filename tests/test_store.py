from __future__ import annotations

import threading
from pathlib import Path

import pytest

import modelcore
from modelcore.errors import BadRequest, Conflict, NotFound, StoreError
from modelcore.manifest import MANIFEST_NAME
from modelcore.store import ModelStore, parse_version


def _deploy(store, name="m", **kw) -> int:
    return modelcore.deploy_python_closure(store, name, lambda xs: xs, **kw)


def test_versions_count_up_and_latest_is_highest(store_dir: Path) -> None:
    assert [_deploy(store_dir) for _ in range(3)] == [1, 2, 3]
    store = ModelStore(store_dir)
    assert store.list_versions("m") == [1, 2, 3]
    assert store.latest_version("m") == 3
    assert store.list_models() == ["m"]


def test_explicit_version_and_conflict(store_dir: Path) -> None:
    assert _deploy(store_dir, version=10) == 10
    assert _deploy(store_dir) == 11
    with pytest.raises(Conflict, match="exists already"):
        _deploy(store_dir, version=10)
    assert ModelStore(store_dir).read_manifest("m", 10).version == 10


def test_listing_ignores_non_versions_and_incomplete_versions(store_dir: Path) -> None:
    _deploy(store_dir)
    (store_dir / "m" / "0").mkdir()
    (store_dir / "m" / "007").mkdir()
    (store_dir / "m" / "abc").mkdir()
    (store_dir / "m" / "5").mkdir()  # no manifest: incomplete
    (store_dir / "m" / "6").write_text("a file, not a folder")
    (store_dir / ".hidden").mkdir()
    store = ModelStore(store_dir)
    assert store.list_versions("m") == [1]
    assert store.list_versions("m", complete_only=False) == [1, 5]
    assert store.list_models() == ["m"]
    # numbers taken by incomplete folders and stray files are skipped
    assert _deploy(store_dir) == 7


def test_publish_is_atomic_and_leaves_no_staging(store_dir: Path) -> None:
    _deploy(store_dir)
    entries = sorted(p.name for p in (store_dir / "m").iterdir())
    assert entries == ["1"]
    assert (store_dir / "m" / "1" / MANIFEST_NAME).exists()


def test_failed_save_publishes_nothing(store_dir: Path) -> None:
    with pytest.raises(StoreError, match="must be callable"):
        modelcore.deploy_python_closure(store_dir, "m", 42)  # not callable
    assert sorted(p.name for p in (store_dir / "m").iterdir()) == []


def test_concurrent_deploys_get_distinct_versions(store_dir: Path) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        v = _deploy(store_dir)
        with lock:
            results.append(v)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, 9))
    assert ModelStore(store_dir).list_versions("m") == list(range(1, 9))


def test_names_are_checked(store_dir: Path) -> None:
    for bad in ["../etc", "a/b", "", ".hidden", "a..b", "x" * 200]:
        with pytest.raises(BadRequest):
            _deploy(store_dir, name=bad)
    with pytest.raises(NotFound):
        ModelStore(store_dir).read_manifest("m", 3)


def test_parse_version() -> None:
    assert parse_version("12") == 12
    assert parse_version("0") is None
    assert parse_version("01") is None
    assert parse_version("v1") is None
    assert parse_version("-1") is None


def test_fsspec_memory_store_publishes_manifest_last() -> None:
    store = ModelStore("memory://mc-test-store")
    assert _deploy(store) == 1
    assert _deploy(store) == 2
    assert store.list_versions("m") == [1, 2]
    local = store.local_dir("m", 2)
    assert (local / "func.pkl").exists() and (local / MANIFEST_NAME).exists()
    store.fs.rm("/mc-test-store", recursive=True)


def test_remote_download_refuses_keys_that_leave_the_version_folder(tmp_path: Path) -> None:
    store = ModelStore("memory://mc-traversal", cache_dir=tmp_path / "cache")
    _deploy(store)
    store.fs.pipe_file("/mc-traversal/m/1/a/../../../../escaped", b"x")
    try:
        with pytest.raises(StoreError, match="leaves its version folder"):
            store.local_dir("m", 1)
        assert not any(p.name == "escaped" for p in tmp_path.rglob("*"))
    finally:
        store.fs.rm("/mc-traversal", recursive=True)
