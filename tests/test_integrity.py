"""Artifact integrity: files checked against the manifest's sha256, and signed manifests."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import cloudpickle
import pytest

import modelcore
from modelcore.errors import IntegrityError, SpecError
from modelcore.integrity import (
    IntegrityPolicy,
    check_signature,
    sign_manifest,
    signing_key_from_env,
    verify_files,
)
from modelcore.manifest import MANIFEST_NAME, Manifest, hash_tree, sha256_file
from modelcore.plugins import get_plugin_manager
from modelcore.server import MANAGER, create_app
from modelcore.spec import parse_spec
from modelcore.store import ModelStore

KEY = "s3cret-signing-key"
REQUIRE_SIGNED = "server: {require_signed: true}"


@pytest.fixture(autouse=True)
def _no_key_from_outside(monkeypatch):
    """A signing key in the developer's environment must not change what these tests see."""
    monkeypatch.delenv("MODELCORE_SIGNING_KEY", raising=False)


def const(k):
    return lambda xs: [k for _ in xs]


def version_dir(store_dir: Path, name: str, version: int = 1) -> Path:
    return store_dir / name / str(version)


async def answer(client, path="/m/predict"):
    resp = await client.post(path, data=json.dumps({"input": [0.0]}))
    return resp.status, await resp.json()


async def wait_until(check, timeout=15.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(interval)


async def version_entry(client, name: str, version: int) -> dict:
    resp = await client.get(f"/v2/models/{name}")
    assert resp.status == 200
    body = await resp.json()
    return next((v for v in body["status"]["versions"] if v["version"] == version), {})


async def wait_failed(client, name: str, version: int) -> str:
    async def failed():
        entry = await version_entry(client, name, version)
        return entry.get("state") == "failed" and entry["error"]

    return await wait_until(failed)


def publish_altered(
    store_dir: Path, tmp_path: Path, name: str, version: int, func, alter: Callable[[Path], None]
) -> None:
    """Deploy ``func`` elsewhere, ``alter`` its files, then rename it into the store at once."""
    elsewhere = tmp_path / f"elsewhere-{version}"
    modelcore.deploy_python_closure(elsewhere, name, func, version=version)
    built = version_dir(elsewhere, name, version)
    alter(built)
    staged = store_dir / name / f".staging-altered-{version}"
    shutil.copytree(built, staged)
    os.rename(staged, version_dir(store_dir, name, version))


def swap_pickle(func) -> Callable[[Path], None]:
    """Rewrite func.pkl with valid cloudpickle bytes of another function."""

    def alter(directory: Path) -> None:
        (directory / "func.pkl").write_bytes(cloudpickle.dumps(func))

    return alter


# -- verify_files -----------------------------------------------------------------------


@pytest.fixture
def deployed(store_dir: Path) -> tuple[Path, Manifest]:
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    directory = version_dir(store_dir, "m")
    (directory / "sub").mkdir()
    (directory / "sub" / "weights.bin").write_bytes(b"\x00\x01\x02\x03")
    manifest = ModelStore(store_dir).read_manifest("m", 1)
    manifest.files = hash_tree(directory)
    return directory, manifest


def test_an_intact_version_passes(deployed) -> None:
    directory, manifest = deployed
    verify_files(directory, manifest)
    # The manifest itself and hidden files are not artifacts.
    (directory / ".DS_Store").write_bytes(b"finder")
    (directory / ".cache").mkdir()
    (directory / ".cache" / "x").write_bytes(b"x")
    verify_files(directory, manifest)


def test_a_missing_file_is_named(deployed) -> None:
    directory, manifest = deployed
    (directory / "sub" / "weights.bin").unlink()
    with pytest.raises(IntegrityError) as info:
        verify_files(directory, manifest)
    assert info.value.message == (
        "integrity check failed: sub/weights.bin is missing (listed in the manifest)"
    )
    assert info.value.status == 503


def test_a_file_of_another_size_is_named(deployed) -> None:
    directory, manifest = deployed
    (directory / "sub" / "weights.bin").write_bytes(b"\x00\x01\x02")
    with pytest.raises(IntegrityError, match=r"sub/weights.bin has 3 bytes, the manifest says 4$"):
        verify_files(directory, manifest)


def test_a_file_with_another_hash_names_both_short_hashes(deployed) -> None:
    directory, manifest = deployed
    path = directory / "sub" / "weights.bin"
    path.write_bytes(b"\x00\x01\x02\x04")  # same size
    expected = next(f.sha256 for f in manifest.files if f.path == "sub/weights.bin")
    actual = sha256_file(path)
    with pytest.raises(IntegrityError) as info:
        verify_files(directory, manifest)
    assert info.value.message == (
        f"integrity check failed: sub/weights.bin has sha256 {actual[:12]}…, "
        f"the manifest says {expected[:12]}…"
    )


def test_a_file_not_in_the_manifest_is_refused(deployed) -> None:
    directory, manifest = deployed
    (directory / "sub" / "extra.py").write_text("import os\n")
    with pytest.raises(IntegrityError, match=r"sub/extra.py is not listed in the manifest$"):
        verify_files(directory, manifest)


def test_a_manifest_path_outside_the_version_is_refused(deployed) -> None:
    directory, manifest = deployed
    manifest.files[0].path = "../../etc/passwd"
    with pytest.raises(IntegrityError, match="outside the version folder"):
        verify_files(directory, manifest)


# -- signatures ---------------------------------------------------------------------------


def test_deploy_with_a_key_signs_the_final_manifest(store_dir: Path, monkeypatch) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const(1), signing_key=KEY)
    store = ModelStore(store_dir)
    manifest = store.read_manifest("m", 1)
    assert manifest.signature is not None and manifest.signature.startswith("hmac-sha256:")
    check_signature(manifest, KEY.encode())  # after a YAML round trip, name and version set
    with pytest.raises(IntegrityError, match="bad signature"):
        check_signature(manifest, b"another key")
    # Without a key (none given, none in the environment) nothing is signed.
    modelcore.deploy_python_closure(store_dir, "m", const(2))
    assert store.read_manifest("m", 2).signature is None
    # The environment's key is the default.
    monkeypatch.setenv("MODELCORE_SIGNING_KEY", KEY)
    assert signing_key_from_env() == KEY.encode()
    modelcore.deploy_python_closure(store_dir, "m", const(3), warmup_inputs=[(1.0,)])
    check_signature(store.read_manifest("m", 3), KEY.encode())


def test_any_edit_or_version_change_breaks_the_signature(store_dir: Path) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const(1), signing_key=KEY)
    manifest = ModelStore(store_dir).read_manifest("m", 1)
    key = KEY.encode()
    for field, value in [("pkgs_to_install", ["evil"]), ("version", 2), ("backend", "other")]:
        with pytest.raises(IntegrityError, match="bad signature"):
            check_signature(manifest.model_copy(update={field: value}), key)
    with pytest.raises(IntegrityError, match="unsigned version: the manifest has no signature"):
        check_signature(manifest.model_copy(update={"signature": None}), key)
    with pytest.raises(IntegrityError, match="unknown signature scheme 'md5'"):
        check_signature(manifest.model_copy(update={"signature": "md5:abc"}), key)
    assert sign_manifest(manifest, key) == manifest.signature


def test_policy_refuses_bare_versions_only_when_signatures_are_required(tmp_path: Path) -> None:
    IntegrityPolicy().check(tmp_path, None)
    with pytest.raises(IntegrityError, match="unsigned version: no manifest"):
        IntegrityPolicy(require_signed=True, key=b"k").check(tmp_path, None)


# -- through the server -----------------------------------------------------------------------


async def test_tampered_new_version_is_refused_and_the_serving_one_stays(
    store_dir: Path, tmp_path: Path, serve
) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    client = await serve("- {name: m, model: m}")
    assert (await answer(client))[1]["output"] == 1
    publish_altered(store_dir, tmp_path, "m", 2, const(2), swap_pickle(const("evil")))
    error = await wait_failed(client, "m", 2)
    assert error.startswith("integrity check failed: func.pkl has ")
    assert (await answer(client))[1]["output"] == 1
    assert client.app[MANAGER].model_status("m")["latest"] == 1


async def test_added_and_missing_files_are_refused(store_dir: Path, tmp_path: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    client = await serve("- {name: m, model: m}")

    def add_file(directory: Path) -> None:
        (directory / "sitecustomize.py").write_text("print('hi')\n")

    publish_altered(store_dir, tmp_path, "m", 2, const(2), add_file)
    error = await wait_failed(client, "m", 2)
    assert error == "integrity check failed: sitecustomize.py is not listed in the manifest"

    def remove_pickle(directory: Path) -> None:
        (directory / "func.pkl").unlink()

    publish_altered(store_dir, tmp_path, "m", 3, const(3), remove_pickle)
    error = await wait_failed(client, "m", 3)
    assert error == "integrity check failed: func.pkl is missing (listed in the manifest)"
    assert (await answer(client))[1]["output"] == 1


async def test_serving_version_rewritten_in_place_keeps_its_loaded_copy(
    store_dir: Path, serve
) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const("old"))
    client = await serve("- {name: m, model: m}")
    assert (await answer(client))[1]["output"] == "old"
    swap_pickle(const("new"))(version_dir(store_dir, "m"))
    error = await wait_failed(client, "m", 1)
    assert "integrity check failed: func.pkl" in error
    assert (await answer(client))[1]["output"] == "old"


async def test_verify_hashes_false_loads_a_tampered_version(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    swap_pickle(const("tampered"))(version_dir(store_dir, "m"))
    client = await serve("- {name: m, model: m}", server_yaml="server: {verify_hashes: false}")
    assert (await answer(client))[1]["output"] == "tampered"


async def test_require_signed_serves_only_correctly_signed_versions(
    store_dir: Path, serve, monkeypatch
) -> None:
    modelcore.deploy_python_closure(store_dir, "good", const("good"), signing_key=KEY)
    modelcore.deploy_python_closure(store_dir, "unsigned", const("unsigned"))
    modelcore.deploy_python_closure(store_dir, "wrongkey", const("wrong"), signing_key="nope")
    modelcore.deploy_python_closure(store_dir, "edited", const("edited"), signing_key=KEY)
    manifest_path = version_dir(store_dir, "edited") / MANIFEST_NAME
    edited = Manifest.from_yaml(manifest_path.read_text())
    edited.metadata["warmup_inputs"] = [[1.0]]  # any edit by hand, signature left as it was
    edited.write(manifest_path.parent)
    bare = version_dir(store_dir, "bare")
    bare.mkdir(parents=True)
    (bare / "func.pkl").write_bytes(cloudpickle.dumps(const("bare")))
    # Signed, then its pickle swapped.
    modelcore.deploy_python_closure(store_dir, "tampered", const("tampered"), signing_key=KEY)
    swap_pickle(const("evil"))(version_dir(store_dir, "tampered"))

    monkeypatch.setenv("MODELCORE_SIGNING_KEY", KEY)
    client = await serve(
        """
        - {name: good, model: good}
        - {name: unsigned, model: unsigned}
        - {name: wrongkey, model: wrongkey}
        - {name: edited, model: edited}
        - {name: bare, model: bare, backend: python_closure}
        - {name: tampered, model: tampered}
        """,
        server_yaml=REQUIRE_SIGNED,
    )
    assert (await answer(client, "/good/predict"))[1]["output"] == "good"
    expected = {
        "unsigned": "unsigned version: the manifest has no signature",
        "wrongkey": "bad signature: the manifest was signed with another key or edited after signing",
        "edited": "bad signature: the manifest was signed with another key or edited after signing",
        "bare": "unsigned version: no manifest (the server requires signed versions)",
    }
    for name, message in expected.items():
        assert await wait_failed(client, name, 1) == message
        status, body = await answer(client, f"/{name}/predict")
        assert status == 503 and body["cause"] == message
    # A valid signature does not vouch for files that differ from the manifest.
    assert (await wait_failed(client, "tampered", 1)).startswith("integrity check failed: func.pkl")


async def test_require_signed_refuses_an_unsigned_new_version_and_keeps_serving(
    store_dir: Path, serve, monkeypatch
) -> None:
    monkeypatch.setenv("MODELCORE_SIGNING_KEY", KEY)
    modelcore.deploy_python_closure(store_dir, "m", const(1))  # signed with the env's key
    client = await serve("- {name: m, model: m}", server_yaml=REQUIRE_SIGNED)
    assert (await answer(client))[1]["output"] == 1
    modelcore.deploy_python_closure(store_dir, "m", const(2), signing_key="attacker")
    assert (await wait_failed(client, "m", 2)).startswith("bad signature")
    modelcore.deploy_python_closure(store_dir, "m", const(3))

    async def three():
        return (await answer(client))[1].get("output") == 3

    await wait_until(three)


def test_require_signed_without_a_key_is_a_spec_error(store_dir: Path) -> None:
    text = f"store: {store_dir}\n{REQUIRE_SIGNED}\napis:\n  - {{name: m, model: m}}\n"
    loaded = parse_spec(text, "spec.yaml")
    with pytest.raises(SpecError) as info:
        create_app(loaded, pm=get_plugin_manager(), check=False)
    assert "server.require_signed" in info.value.message
    assert "MODELCORE_SIGNING_KEY" in info.value.message
