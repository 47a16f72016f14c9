"""What is particular to the onnx backend: sources, metadata, the PyTorch export, devices, bare folders."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import modelcore
from modelcore.errors import LoadError, PluginError, PredictionError, StoreError
from modelcore.plugins import get_plugin_manager
from modelcore.store import ModelStore
from modelcore_onnx import deploy_onnx_model, deploy_pytorch_model
from modelcore_onnx.testing import affine_model, two_input_model

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")

W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)
B = np.array([0.5, -1.0], dtype=np.float32)
HAS_CUDA_EP = "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _expected(xs) -> list[list[float]]:
    return [(np.asarray(x, dtype=np.float32) @ W + B).tolist() for x in xs]


def _first_output(session, xs):
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.stack(xs).astype(np.float32)})[0].tolist()


def _load(store: Path, name: str, version: int = 1, device: str = "cpu"):
    ms = ModelStore(store)
    backend = get_plugin_manager().backend("onnx")
    model = backend.load(ms.local_dir(name, version), ms.read_manifest(name, version), device)
    return backend, model


def _load_bare(directory: Path, device: str = "cpu"):
    backend = get_plugin_manager().backend("onnx")
    return backend, backend.load(directory, None, device)


# -- saving -------------------------------------------------------------------------
def test_manifest_records_graph_signature_and_frameworks(tmp_path: Path) -> None:
    version = deploy_onnx_model(tmp_path, "affine", _first_output, affine_model(W, B))
    manifest = ModelStore(tmp_path).read_manifest("affine", version)
    assert (manifest.backend, manifest.format, manifest.has_function) == ("onnx", "onnx", True)
    assert {"onnx", "onnxruntime"} <= set(manifest.frameworks)
    assert {f.path for f in manifest.files} == {"model.onnx", "func.pkl"}
    meta = manifest.metadata["onnx"]
    assert meta["inputs"] == [
        {
            "name": "x",
            "shape": ["batch", 3],
            "dtype": "float32",
            "onnx_type": "FLOAT",
            "datatype": "FP32",
        }
    ]
    assert meta["outputs"] == [
        {
            "name": "y",
            "shape": ["batch", 2],
            "dtype": "float32",
            "onnx_type": "FLOAT",
            "datatype": "FP32",
        }
    ]
    assert meta["opsets"] == {"ai.onnx": 17} and meta["source"] == "modelproto"


def test_deploy_from_a_file_a_path_string_and_bytes(tmp_path: Path) -> None:
    file = tmp_path / "given.onnx"
    onnx.save(affine_model(W, B), file)
    store = tmp_path / "store"
    for source in (file, str(file), file.read_bytes()):
        deploy_onnx_model(store, "affine", _first_output, source)
    xs = [np.array([1.0, 0.0, -1.0]), np.array([2.0, 2.0, 2.0])]
    for version in (1, 2, 3):
        backend, model = _load(store, "affine", version)
        np.testing.assert_allclose(backend.predict(model, xs), _expected(xs), rtol=1e-6)
    sources = [
        ModelStore(store).read_manifest("affine", v).metadata["onnx"]["source"] for v in (1, 2, 3)
    ]
    assert sources == ["file", "file", "bytes"]


def test_modelcore_deploy_claims_a_modelproto(tmp_path: Path) -> None:
    modelcore.deploy(tmp_path, "claimed", _first_output, model=affine_model(W, B))
    assert ModelStore(tmp_path).read_manifest("claimed", 1).backend == "onnx"
    pm = get_plugin_manager()
    assert pm.claim(torch.nn.Linear(2, 1)) != "onnx"  # the pytorch backend's, not ours
    assert pm.claim(b"bytes") != "onnx"


def test_bad_models_are_refused_before_publishing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not an ONNX model"):
        deploy_onnx_model(tmp_path, "bad", _first_output, b"\x00not a protobuf at all")
    with pytest.raises(StoreError, match="no such ONNX file"):
        deploy_onnx_model(tmp_path, "bad", _first_output, tmp_path / "missing.onnx")
    with pytest.raises(PluginError, match="needs example inputs"):
        modelcore.deploy(
            tmp_path, "bad", _first_output, model=torch.nn.Linear(3, 2), backend="onnx"
        )
    with pytest.raises(PluginError, match=r"not a builtins\.dict"):
        deploy_onnx_model(tmp_path, "bad", _first_output, {"not": "a model"})
    with pytest.raises(PluginError, match=r"needs a torch\.nn\.Module"):
        deploy_pytorch_model(tmp_path, "bad", _first_output, affine_model(W, B), torch.zeros(1, 3))
    assert ModelStore(tmp_path).list_versions("bad") == []


# -- the PyTorch export ---------------------------------------------------------------
class TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 2)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.proj(a) * b


def test_pytorch_export_has_a_dynamic_batch_dimension(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    module.train()
    # Example batch of 1; served with batches of 1, 4 and 7.
    deploy_pytorch_model(tmp_path, "mlp", _first_output, module, torch.zeros(1, 3))
    assert module.training, "the caller's module keeps its mode"
    meta = ModelStore(tmp_path).read_manifest("mlp", 1).metadata["onnx"]
    assert meta["source"] == "pytorch"
    (inp,) = meta["inputs"]
    (out,) = meta["outputs"]
    assert isinstance(inp["shape"][0], str) and inp["shape"][1:] == [3]
    assert out["shape"] == [inp["shape"][0], 2]
    backend, model = _load(tmp_path, "mlp")
    module.eval()
    rng = np.random.default_rng(1)
    for n in (1, 4, 7):
        xs = list(rng.normal(size=(n, 3)))
        with torch.no_grad():
            want = module(torch.tensor(np.stack(xs), dtype=torch.float32)).numpy()
        np.testing.assert_allclose(backend.predict(model, xs), want, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:.*The axis name:UserWarning")
def test_pytorch_export_with_two_inputs_and_numpy_examples(tmp_path: Path) -> None:
    torch.manual_seed(3)
    module = TwoInputs().eval()

    def predict(session, xs):
        a = np.stack([x[:3] for x in xs]).astype(np.float32)
        b = np.stack([x[3:] for x in xs]).astype(np.float32)
        names = [i.name for i in session.get_inputs()]
        return session.run(None, dict(zip(names, (a, b), strict=True)))[0].tolist()

    examples = (np.zeros((2, 3), np.float32), np.ones((2, 2), np.float32))
    deploy_pytorch_model(tmp_path, "two", predict, module, examples)
    meta = ModelStore(tmp_path).read_manifest("two", 1).metadata["onnx"]
    assert [i["name"] for i in meta["inputs"]] == ["a", "b"]
    backend, model = _load(tmp_path, "two")
    xs = [np.arange(5.0) + k for k in range(3)]
    with torch.no_grad():
        a = torch.tensor(np.stack([x[:3] for x in xs]), dtype=torch.float32)
        b = torch.tensor(np.stack([x[3:] for x in xs]), dtype=torch.float32)
        want = module(a, b).numpy()
    np.testing.assert_allclose(backend.predict(model, xs), want, rtol=1e-5, atol=1e-6)


def test_pytorch_export_without_a_function_uses_the_default_predict(tmp_path: Path) -> None:
    torch.manual_seed(5)
    module = torch.nn.Linear(3, 2).eval()
    deploy_pytorch_model(tmp_path, "plain", None, module, torch.zeros(2, 3))
    backend, model = _load(tmp_path, "plain")
    xs = [np.array([1.0, 2.0, 3.0]), np.zeros(3), np.ones(3)]
    with torch.no_grad():
        want = module(torch.tensor(np.stack(xs), dtype=torch.float32)).numpy()
    got = backend.predict(model, xs)
    assert isinstance(got[0], list)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# -- bare folders and the default predict -------------------------------------------
def test_bare_folder_is_served_with_the_default_predict(tmp_path: Path) -> None:
    onnx.save(affine_model(W, B), tmp_path / "model.onnx")
    backend, model = _load_bare(tmp_path)
    xs = [np.array([1.0, 2.0, 3.0]), np.array([0.0, -1.0, 0.5]), np.zeros(3)]
    got = backend.predict(model, xs)
    assert got == _expected(xs)  # float32 arithmetic on both sides
    assert all(isinstance(v, float) for row in got for v in row)


def test_default_predict_runs_a_fixed_batch_of_one_per_input(tmp_path: Path) -> None:
    onnx.save(affine_model(W, B, batch=1), tmp_path / "model.onnx")
    backend, model = _load_bare(tmp_path)
    xs = [np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])]
    assert backend.predict(model, xs) == _expected(xs)


def test_default_predict_casts_to_the_models_dtype(tmp_path: Path) -> None:
    onnx.save(affine_model(W, B, dtype=np.float64), tmp_path / "model.onnx")
    backend, model = _load_bare(tmp_path)
    xs = [np.array([1, 2, 3], dtype=np.int64)]
    np.testing.assert_allclose(backend.predict(model, xs), [W.astype(np.float64).T @ [1, 2, 3] + B])


def test_bare_folder_needs_a_single_input_model(tmp_path: Path) -> None:
    onnx.save(two_input_model(), tmp_path / "model.onnx")
    with pytest.raises(LoadError, match="exactly one input"):
        _load_bare(tmp_path)


def test_bare_folder_without_model_onnx_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no model\.onnx"):
        _load_bare(tmp_path)


# -- devices, threads, unload -------------------------------------------------------
@pytest.mark.skipif(HAS_CUDA_EP, reason="this onnxruntime has the CUDA provider")
def test_explicit_cuda_without_the_cuda_provider_is_a_clear_error(tmp_path: Path) -> None:
    onnx.save(affine_model(W, B), tmp_path / "model.onnx")
    for device in ("cuda", "cuda:1"):
        with pytest.raises(LoadError, match="install onnxruntime-gpu"):
            _load_bare(tmp_path, device)
    backend, model = _load_bare(tmp_path)
    with pytest.raises(LoadError, match="CUDAExecutionProvider"):
        backend.place(model, "cuda:0")


@pytest.mark.skipif(HAS_CUDA_EP, reason="this onnxruntime has the CUDA provider")
def test_auto_takes_the_cpu_when_there_is_no_cuda_provider(tmp_path: Path) -> None:
    onnx.save(affine_model(W, B), tmp_path / "model.onnx")
    backend, model = _load_bare(tmp_path, "auto")
    assert model.providers == ["CPUExecutionProvider"]
    assert model.session.get_providers() == ["CPUExecutionProvider"]
    session = model.session
    assert backend.place(model, "cpu").session is session, "same providers: no rebuild"


def test_concurrent_predictions_share_one_session(tmp_path: Path) -> None:
    deploy_onnx_model(tmp_path, "affine", _first_output, affine_model(W, B))
    backend, model = _load(tmp_path, "affine")
    batches = [[np.full(3, float(k))] * (k + 1) for k in range(16)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda xs: backend.predict(model, xs), batches))
    for xs, got in zip(batches, results, strict=True):
        np.testing.assert_allclose(got, _expected(xs), rtol=1e-6)


def test_unload_drops_the_session(tmp_path: Path) -> None:
    deploy_onnx_model(tmp_path, "affine", _first_output, affine_model(W, B))
    backend, model = _load(tmp_path, "affine")
    assert backend.unload(model) is True
    assert model.session is None and model.func is None
    with pytest.raises(PredictionError, match="unloaded"):
        backend.predict(model, [np.zeros(3)])


@pytest.mark.gpu
def test_cuda_providers_and_placement(tmp_path: Path) -> None:
    if not HAS_CUDA_EP:
        pytest.skip("needs onnxruntime-gpu (CUDAExecutionProvider) in place of onnxruntime")
    deploy_onnx_model(tmp_path, "affine", _first_output, affine_model(W, B))
    xs = [np.array([1.0, 2.0, 3.0]), np.zeros(3)]
    backend, model = _load(tmp_path, "affine", device="cuda:0")
    assert model.session.get_providers()[0] == "CUDAExecutionProvider"
    assert model.providers[0] == ("CUDAExecutionProvider", {"device_id": 0})
    np.testing.assert_allclose(backend.predict(model, xs), _expected(xs), rtol=1e-5)
    model = backend.place(model, "cpu")
    assert model.session.get_providers() == ["CPUExecutionProvider"]
    np.testing.assert_allclose(backend.predict(model, xs), _expected(xs), rtol=1e-5)
    model = backend.place(model, "auto")
    assert model.session.get_providers()[0] == "CUDAExecutionProvider"
    assert backend.unload(model) is True


def test_importing_the_plugin_imports_no_framework() -> None:
    code = (
        "import sys, modelcore_onnx, modelcore_onnx.plugin\n"
        "from modelcore.plugins import get_plugin_manager\n"
        "assert 'onnx' in get_plugin_manager().backends()\n"
        "loaded = [m for m in ('onnx', 'onnxruntime', 'torch') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
