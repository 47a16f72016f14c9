"""Bare folders, the default predict, device placement and unloading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import modelcore
from modelcore.errors import BadRequest, PluginError, PredictionError, StoreError
from modelcore.store import ModelStore
from modelcore_pytorch import deploy_pytorch_model
from modelcore_pytorch.devices import resolve_device

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

X = [np.array([1.0, 2.0, 3.0]), np.array([0.0, -1.0, 0.5])]


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).eval()


def expected(model: torch.nn.Module, xs) -> list:
    with torch.no_grad():
        return model(torch.as_tensor(np.stack(xs), dtype=torch.float32)).tolist()


class Pair(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.sum(dim=1), x * 2


class Named(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"total": x.sum(dim=1), "first": x[:, 0]}


class Total(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum()


def backend():
    return modelcore.get_plugin_manager().backend("pytorch")


def bare(tmp_path: Path) -> Path:
    directory = tmp_path / "bare" / "1"
    directory.mkdir(parents=True)
    return directory


# -- bare folders (no manifest) ------------------------------------------------------
def test_bare_torchscript_file_is_served_with_the_default_predict(tmp_path: Path) -> None:
    directory = bare(tmp_path)
    torch.jit.save(torch.jit.script(mlp()), str(directory / "model.pt"))
    model = backend().load(directory, None, "cpu")
    assert model.format == "torchscript" and model.func is None
    np.testing.assert_allclose(backend().predict(model, X), expected(mlp(), X), rtol=1e-6)


def test_bare_export_program_is_served_with_the_default_predict(tmp_path: Path) -> None:
    directory = bare(tmp_path)
    batch = torch.export.Dim("batch")
    program = torch.export.export(mlp(), (torch.zeros(2, 3),), dynamic_shapes=({0: batch},))
    torch.export.save(program, directory / "model.pt2")
    model = backend().load(directory, None, "auto")
    assert model.format == "torch-export"
    np.testing.assert_allclose(backend().predict(model, X * 2), expected(mlp(), X * 2), rtol=1e-6)


def test_a_single_file_with_another_name_is_found(tmp_path: Path) -> None:
    directory = bare(tmp_path)
    torch.jit.save(torch.jit.script(mlp()), str(directory / "classifier.pth"))
    assert backend().load(directory, None, "cpu").format == "torchscript"


def test_bare_folders_that_cannot_be_served_say_why(tmp_path: Path) -> None:
    directory = bare(tmp_path)
    with pytest.raises(StoreError, match="no single TorchScript"):
        backend().load(directory, None, "cpu")
    torch.save(mlp().state_dict(), directory / "model.pt")
    with pytest.raises(StoreError, match="cannot load it as a TorchScript archive"):
        backend().load(directory, None, "cpu")


# -- the default predict -------------------------------------------------------------
def test_default_predict_splits_tuples_and_dicts_into_rows(tmp_path: Path) -> None:
    deploy_pytorch_model(tmp_path, "pair", None, Pair(), save_format="pickled-module")
    deploy_pytorch_model(tmp_path, "named", None, Named(), save_format="pickled-module")
    store = ModelStore(tmp_path)
    pair = backend().load(store.local_dir("pair", 1), store.read_manifest("pair", 1), "cpu")
    named = backend().load(store.local_dir("named", 1), store.read_manifest("named", 1), "cpu")
    assert backend().predict(pair, [np.array([1, 2]), np.array([3, 4])]) == [
        [3.0, [2.0, 4.0]],
        [7.0, [6.0, 8.0]],
    ]
    assert backend().predict(named, [np.array([1.0, 2.0])]) == [{"total": 3.0, "first": 1.0}]


def test_default_predict_rejects_what_it_cannot_batch(tmp_path: Path) -> None:
    deploy_pytorch_model(tmp_path, "mlp", None, mlp())
    deploy_pytorch_model(tmp_path, "total", None, Total(), save_format="pickled-module")
    store = ModelStore(tmp_path)
    model = backend().load(store.local_dir("mlp", 1), store.read_manifest("mlp", 1), "cpu")
    with pytest.raises(BadRequest, match="different shapes"):
        backend().predict(model, [np.ones(3), np.ones(2)])
    with pytest.raises(BadRequest, match="needs numbers"):
        backend().predict(model, ["a", "b"])
    total = backend().load(store.local_dir("total", 1), store.read_manifest("total", 1), "cpu")
    with pytest.raises(PredictionError, match="one output row per input"):
        backend().predict(total, X)


# -- devices -------------------------------------------------------------------------
def test_device_names() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    wanted = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == wanted
    with pytest.raises(PluginError, match="unknown device 'tpu'"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where there is no GPU")
def test_asking_for_a_gpu_torch_cannot_see_is_a_clear_error(tmp_path: Path) -> None:
    deploy_pytorch_model(tmp_path, "mlp", None, mlp())
    store = ModelStore(tmp_path)
    with pytest.raises(PluginError, match="sees no CUDA device"):
        backend().load(store.local_dir("mlp", 1), store.read_manifest("mlp", 1), "cuda:0")


def test_place_on_the_same_device_keeps_the_model(tmp_path: Path) -> None:
    deploy_pytorch_model(tmp_path, "mlp", None, mlp())
    store = ModelStore(tmp_path)
    model = backend().load(store.local_dir("mlp", 1), store.read_manifest("mlp", 1), "auto")
    assert backend().place(model, "auto") is model


def wide() -> torch.nn.Module:
    # About 1 MiB of weights: their release is visible over anything CUDA keeps cached.
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 1024),
        torch.nn.Linear(1024, 2),
    ).eval()


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("save_format", "example"),
    [("torchscript", None), ("torch-export", torch.zeros(1, 3)), ("pickled-module", None)],
)
def test_gpu_place_predict_and_unload_frees_memory(
    tmp_path: Path, save_format: str, example
) -> None:
    def where(model, xs):
        device = next(model.parameters()).device
        batch = torch.as_tensor(np.stack(xs), dtype=torch.float32, device=device)
        return [[device.type, row] for row in model(batch).cpu().tolist()]

    options = {"save_format": save_format, "example_inputs": example}
    deploy_pytorch_model(tmp_path, "wide", None, wide(), **options)
    deploy_pytorch_model(tmp_path, "wide", where, wide(), **options)
    store = ModelStore(tmp_path)
    weights = sum(p.nbytes for p in wide().parameters())
    # Loaded on the CPU, then placed on the GPU, as the server does for `device: cuda`.
    model = backend().load(store.local_dir("wide", 1), store.read_manifest("wide", 1), "cpu")
    model = backend().place(model, "cuda")
    assert model.device.type == "cuda"
    np.testing.assert_allclose(backend().predict(model, X), expected(wide(), X), rtol=1e-4)
    held = torch.cuda.memory_allocated()
    assert backend().unload(model) is True
    del model
    assert held - torch.cuda.memory_allocated() >= weights
    # Loaded straight onto the GPU; the user's function gets the module there.
    model = backend().load(store.local_dir("wide", 2), store.read_manifest("wide", 2), "auto")
    assert [row[0] for row in backend().predict(model, X)] == ["cuda", "cuda"]
    held = torch.cuda.memory_allocated()
    assert backend().unload(model) is True
    del model
    assert held - torch.cuda.memory_allocated() >= weights
