"""Test helpers for plugin authors: the backend contract suite every backend passes.

Subclass :class:`BackendContract` in your plugin's tests with a real model of
your framework (as fsspec ships abstract tests for its filesystems)::

    class TestTorchContract(BackendContract):
        backend = "pytorch"

        def make_model(self):
            return torch.nn.Linear(3, 1)

        def make_func(self):
            return lambda model, xs: [float(y) for y in model(torch.tensor(np.stack(xs)))]

        def sample_inputs(self):
            return [np.ones(3), np.zeros(3)]

pytest collects the inherited ``test_*`` methods; no framework is mocked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelcore.deploy import deploy
from modelcore.manifest import MANIFEST_NAME, Manifest, sha256_file
from modelcore.plugins import ModelcorePluginManager, get_plugin_manager
from modelcore.store import ModelStore

__all__ = ["BackendContract", "ServerProcess", "assert_outputs_close", "rewrite_in_place"]


def rewrite_in_place(directory: Path, files: dict[str, bytes]) -> None:
    """Rewrite files of a published local version the legitimate way: files, then the manifest.

    The manifest's hashes are updated (written last, like a publish), so a
    server that checks hashes reloads the version instead of refusing it.
    """
    from modelcore.manifest import hash_tree

    for rel, data in files.items():
        (directory / rel).write_bytes(data)
    manifest = Manifest.read(directory)
    manifest.files = hash_tree(directory)
    manifest.write(directory)


def assert_outputs_close(
    actual: list[Any], expected: list[Any], rtol: float = 1e-5, atol: float = 1e-6
) -> None:
    """Compare two output lists element by element (numbers approximately)."""
    assert isinstance(actual, list), f"outputs must be a list, got {type(actual).__name__}"
    assert len(actual) == len(expected), f"{len(actual)} outputs, expected {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if isinstance(e, (str, bytes, dict)) or e is None:
            assert a == e, f"output {i}: {a!r} != {e!r}"
        else:
            np.testing.assert_allclose(
                np.asarray(a, dtype=float),
                np.asarray(e, dtype=float),
                rtol=rtol,
                atol=atol,
                err_msg=f"output {i}",
            )


class BackendContract:
    """The save -> load -> predict -> place -> unload suite; subclass it per backend."""

    backend: str = ""
    input_type: str = "doubles"
    claims_model: bool = True
    """Whether ``modelcore_claim`` should pick this backend for :meth:`make_model`'s object."""
    expected_format: str | None = None

    # -- what a subclass provides ------------------------------------------------
    def make_model(self) -> Any:
        """A real model of the framework (``None`` for a plain closure)."""
        return None

    def make_func(self) -> Callable[..., Any]:
        raise NotImplementedError

    def sample_inputs(self) -> list[Any]:
        raise NotImplementedError

    def expected_outputs(self, inputs: list[Any]) -> list[Any]:
        """What the deployed model must answer; by default what the live model answers."""
        model, func = self.make_model(), self.make_func()
        return list(func(inputs) if model is None else func(model, inputs))

    def deploy_options(self) -> dict[str, Any]:
        return {}

    # -- fixtures ---------------------------------------------------------------
    @pytest.fixture
    def pm(self) -> ModelcorePluginManager:
        return get_plugin_manager()

    @pytest.fixture
    def store(self, tmp_path: Path) -> ModelStore:
        return ModelStore(tmp_path / "store")

    @pytest.fixture
    def deployed(self, pm: ModelcorePluginManager, store: ModelStore) -> tuple[ModelStore, int]:
        version = deploy(
            store,
            "contract",
            self.make_func(),
            model=self.make_model(),
            backend=self.backend,
            input_type=self.input_type,
            options=self.deploy_options(),
            pm=pm,
        )
        return store, version

    def _load(self, pm: ModelcorePluginManager, store: ModelStore, version: int) -> Any:
        manifest = store.read_manifest("contract", version)
        backend = pm.backend(manifest.backend)
        return backend, backend.load(store.local_dir("contract", version), manifest, "cpu")

    # -- the contract -------------------------------------------------------------
    def test_backend_is_installed(self, pm: ModelcorePluginManager) -> None:
        assert self.backend in pm.backends(), f"{self.backend} missing from {sorted(pm.backends())}"

    def test_claims_its_models(self, pm: ModelcorePluginManager) -> None:
        model = self.make_model()
        if model is None or not self.claims_model:
            assert pm.claim(model) != self.backend, "claims an object it should leave alone"
        else:
            assert pm.claim(model) == self.backend

    def test_does_not_claim_foreign_objects(self, pm: ModelcorePluginManager) -> None:
        backend = pm.claim(object())
        assert backend != self.backend

    def test_deploy_writes_a_complete_manifest(self, deployed: tuple[ModelStore, int]) -> None:
        store, version = deployed
        assert version == 1
        directory = store.local_dir("contract", version)
        manifest = Manifest.read(directory)
        assert manifest.backend == self.backend
        assert manifest.name == "contract" and manifest.version == 1
        if self.expected_format is not None:
            assert manifest.format == self.expected_format
        listed = {f.path for f in manifest.files}
        on_disk = {
            p.relative_to(directory).as_posix()
            for p in directory.rglob("*")
            if p.is_file() and p.name != MANIFEST_NAME
        }
        assert listed == on_disk
        for entry in manifest.files:
            assert sha256_file(directory / entry.path) == entry.sha256
        for framework in self._frameworks():
            assert framework in manifest.frameworks, f"{framework} version not recorded"

    def _frameworks(self) -> tuple[str, ...]:
        return get_plugin_manager().backend(self.backend).info.frameworks

    def test_load_and_predict(
        self, pm: ModelcorePluginManager, deployed: tuple[ModelStore, int]
    ) -> None:
        store, version = deployed
        backend, model = self._load(pm, store, version)
        inputs = self.sample_inputs()
        assert_outputs_close(list(backend.predict(model, inputs)), self.expected_outputs(inputs))

    def test_predict_keeps_batch_length(
        self, pm: ModelcorePluginManager, deployed: tuple[ModelStore, int]
    ) -> None:
        store, version = deployed
        backend, model = self._load(pm, store, version)
        inputs = self.sample_inputs()
        for batch in (inputs[:1], inputs, inputs * 3):
            assert len(backend.predict(model, batch)) == len(batch)

    def test_place_on_cpu(
        self, pm: ModelcorePluginManager, deployed: tuple[ModelStore, int]
    ) -> None:
        store, version = deployed
        backend, model = self._load(pm, store, version)
        placed = backend.place(model, "cpu")
        inputs = self.sample_inputs()
        assert_outputs_close(list(backend.predict(placed, inputs)), self.expected_outputs(inputs))

    def test_unload(self, pm: ModelcorePluginManager, deployed: tuple[ModelStore, int]) -> None:
        store, version = deployed
        backend, model = self._load(pm, store, version)
        assert backend.unload(model) is True

    def test_versions_are_immutable(
        self, pm: ModelcorePluginManager, deployed: tuple[ModelStore, int]
    ) -> None:
        store, version = deployed
        second = deploy(
            store,
            "contract",
            self.make_func(),
            model=self.make_model(),
            backend=self.backend,
            input_type=self.input_type,
            options=self.deploy_options(),
            pm=pm,
        )
        assert second == version + 1
        assert store.list_versions("contract") == [version, second]


class ServerProcess:
    """``modelcore serve SPEC`` as a real subprocess on 127.0.0.1, ready on entry, SIGTERM on exit.

    ``spec_text`` may contain ``PORT``, replaced by a free port; ``base`` is the server's URL.
    """

    def __init__(self, spec_text: str, workdir: Path, *args: str, ready_timeout: float = 120.0):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.spec = workdir / f"spec-{self.port}.yaml"
        self.spec.write_text(spec_text.replace("PORT", str(self.port)))
        self.args = args
        self.ready_timeout = ready_timeout
        self.proc: Any = None
        self.returncode: int | None = None

    def __enter__(self) -> ServerProcess:
        import subprocess
        import sys
        import time
        import urllib.request

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelcore", "serve", str(self.spec), *self.args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/v2/health/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"modelcore serve {self.spec} never became ready")
            time.sleep(0.1)

    def stop(self, sig: int | None = None, timeout: float = 30.0) -> int | None:
        """Signal the server (SIGTERM by default) and wait; return its exit code."""
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig if sig is not None else signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode if self.proc is not None else None
        return self.returncode

    def __exit__(self, *exc: object) -> None:
        self.stop()
