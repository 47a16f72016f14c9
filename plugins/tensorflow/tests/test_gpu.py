"""Placement on a GPU: variables restored there, signatures run there, memory handed back on unload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelcore.plugins import get_plugin_manager
from modelcore.store import ModelStore
from modelcore_tensorflow import deploy_tensorflow_model

ROWS = [np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.0, 0.5])]


@pytest.fixture
def gpu_store(tmp_path: Path, models) -> ModelStore:
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        pytest.skip("TensorFlow sees no GPU here (it needs the CUDA wheels: tensorflow[and-cuda])")
    store = ModelStore(tmp_path)
    deploy_tensorflow_model(store, "dense", None, models.dense())
    return store


def _variable_devices(model) -> set[str]:
    return {v.device.rsplit("/", 1)[-1] for v in model.module.variables}


@pytest.mark.gpu
def test_load_on_cuda_runs_there_and_unload_frees_gpu_memory(gpu_store, models) -> None:
    import tensorflow as tf

    backend = get_plugin_manager().backend("tensorflow")
    directory, manifest = gpu_store.local_dir("dense", 1), gpu_store.read_manifest("dense", 1)
    before = tf.config.experimental.get_memory_info("GPU:0")["current"]
    model = backend.place(backend.load(directory, manifest, "cuda"), "cuda")
    assert model.device == "/GPU:0"
    assert _variable_devices(model) == {"device:GPU:0"}
    with tf.device(model.device):
        out = model.signature(x=tf.constant(np.stack(ROWS), tf.float32))["output_0"]
    assert out.device.endswith("GPU:0")
    np.testing.assert_allclose(backend.predict(model, ROWS), models.dense_expected(ROWS), rtol=1e-5)
    loaded = tf.config.experimental.get_memory_info("GPU:0")["current"]
    assert loaded > before
    assert backend.unload(model) is True
    assert tf.config.experimental.get_memory_info("GPU:0")["current"] < loaded


@pytest.mark.gpu
def test_place_moves_a_cpu_model_to_the_gpu_and_back(gpu_store, models) -> None:
    backend = get_plugin_manager().backend("tensorflow")
    directory, manifest = gpu_store.local_dir("dense", 1), gpu_store.read_manifest("dense", 1)
    model = backend.load(directory, manifest, "cpu")
    assert _variable_devices(model) == {"device:CPU:0"}
    for device, where in (("auto", "GPU:0"), ("cuda:0", "GPU:0"), ("cpu", "CPU:0")):
        placed = backend.place(model, device)
        assert placed is model and model.device == f"/{where}"
        assert _variable_devices(model) == {f"device:{where}"}
        np.testing.assert_allclose(
            backend.predict(model, ROWS), models.dense_expected(ROWS), rtol=1e-5
        )
    backend.unload(model)
