from __future__ import annotations

from pathlib import Path

import pytest

from modelcore.errors import StoreError
from modelcore.manifest import MANIFEST_NAME, Manifest, hash_tree, now, sha256_file


def _manifest(**kw) -> Manifest:
    return Manifest(name="m", version=1, backend="python_closure", created=now(), **kw)


def test_roundtrip_through_yaml(tmp_path: Path) -> None:
    m = _manifest(metadata={"a": [1, 2]}, pkgs_to_install=["six"], frameworks={"torch": "2.13.0"})
    m.write(tmp_path)
    back = Manifest.read(tmp_path)
    assert back == m
    assert not (tmp_path / (MANIFEST_NAME + ".tmp")).exists()


def test_hash_tree_lists_every_file_but_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"abc")
    (tmp_path / "sub" / "b.txt").write_text("hello")
    (tmp_path / MANIFEST_NAME).write_text("x")
    entries = hash_tree(tmp_path)
    assert [e.path for e in entries] == ["a.bin", "sub/b.txt"]
    assert entries[0].size == 3
    assert entries[0].sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert entries[1].sha256 == sha256_file(tmp_path / "sub" / "b.txt")


def test_invalid_manifest_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text("name: m\nversion: one\n")
    with pytest.raises(StoreError, match="invalid manifest"):
        Manifest.read(tmp_path)


def test_unknown_manifest_fields_are_refused() -> None:
    with pytest.raises(StoreError):
        Manifest.from_yaml(
            "name: m\nversion: 1\nbackend: b\ncreated: 2026-01-01T00:00:00Z\nbogus: 1\n"
        )
