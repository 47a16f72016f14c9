"""What is particular to the tensorflow backend: the three ways in, signatures, defaults, memory."""

from __future__ import annotations

import gc
import json
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

import modelcore
from modelcore.errors import BadRequest, PluginError, StoreError
from modelcore.manifest import Manifest
from modelcore.plugins import get_plugin_manager
from modelcore.store import ModelStore
from modelcore_tensorflow import PayloadError, TensorFlowModel, deploy_tensorflow_model

ROWS = [np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.0, 0.5])]


def _load(store: ModelStore, name: str, version: int = 1, device: str = "cpu"):
    backend = get_plugin_manager().backend("tensorflow")
    manifest = store.read_manifest(name, version) if store.has_manifest(name, version) else None
    return backend, backend.load(store.local_dir(name, version), manifest, device)


def test_importing_the_plugin_does_not_import_tensorflow() -> None:
    import subprocess

    code = (
        "import sys, modelcore; pm = modelcore.get_plugin_manager(); pm.backends();"
        "pm.claim(object()); print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_keras_model_is_exported_with_its_signature_recorded(tmp_path: Path, models) -> None:
    def func(model, xs):
        # What the function receives: the loaded TensorFlowModel; calling it runs the signature.
        kind = f"{type(model).__name__} {model.signature_name} {model.device}"
        return [{"kind": kind, "y": row.tolist()} for row in model(np.stack(xs))]

    store = ModelStore(tmp_path)
    version = deploy_tensorflow_model(store, "dense", func, models.dense())
    manifest = store.read_manifest("dense", version)
    assert manifest.backend == "tensorflow" and manifest.format == "saved_model"
    assert manifest.has_function
    assert manifest.metadata["source"] == "keras"
    assert manifest.metadata["signature"] == {
        "name": "serving_default",
        "inputs": {"x": {"dtype": "float32", "shape": [None, 3]}},
        "outputs": {"output_0": {"dtype": "float32", "shape": [None, 2]}},
    }
    assert {"tensorflow", "keras"} <= set(manifest.frameworks)
    files = {f.path for f in manifest.files}
    assert "func.pkl" in files and "saved_model/saved_model.pb" in files

    backend, model = _load(store, "dense")
    outputs = backend.predict(model, ROWS)
    assert [o["kind"] for o in outputs] == ["TensorFlowModel serving_default /CPU:0"] * 2
    np.testing.assert_allclose([o["y"] for o in outputs], models.dense_expected(ROWS), rtol=1e-6)
    assert isinstance(model, TensorFlowModel)
    assert list(model.inputs) == ["x"] and list(model.outputs) == ["output_0"]
    raw = model.signature(x=np.ones((1, 3), np.float32))  # the concrete function itself
    np.testing.assert_allclose(raw["output_0"].numpy(), models.dense_expected([np.ones(3)]))
    assert "serving_default" in model.module.signatures


def test_tf_module_is_saved_and_several_outputs_come_back_as_dicts(tmp_path: Path, models) -> None:
    store = ModelStore(tmp_path)
    # deploy() without backend= reaches the tensorflow backend by claiming the tf.Module.
    modelcore.deploy(store, "scale", None, model=models.two_outputs())
    manifest = store.read_manifest("scale", 1)
    assert manifest.backend == "tensorflow" and not manifest.has_function
    assert manifest.metadata["source"] == "tf.Module"
    assert manifest.metadata["signature"]["outputs"] == {
        "scaled": {"dtype": "float32", "shape": [None, 2]},
        "total": {"dtype": "float32", "shape": [None]},
    }
    backend, model = _load(store, "scale")
    assert backend.predict(model, [np.array([1.0, 1.0]), [0.5, -1]]) == [
        {"scaled": [2.0, 3.0], "total": 5.0},
        {"scaled": [1.0, -3.0], "total": -2.0},
    ]
    both = model(np.array([[1.0, 2.0]]))  # several outputs: a dict of arrays
    assert set(both) == {"scaled", "total"} and both["total"].tolist() == [8.0]


def test_several_named_inputs_are_dicts_or_json_strings(tmp_path: Path, models) -> None:
    module = models.two_inputs()
    deploy_tensorflow_model(tmp_path, "mul", None, module, signatures=module.f)
    backend, model = _load(ModelStore(tmp_path), "mul")
    assert model.inputs["b"].dtype.name == "int32"
    outputs = backend.predict(model, [{"a": 1.5, "b": 2}, json.dumps({"a": 2.0, "b": 3.7})])
    assert outputs == [3.0, 6.0]  # b is cast to the declared int32, so 3.7 -> 3
    with pytest.raises(PayloadError, match=r"missing \['b'\]"):
        backend.predict(model, [{"a": 1.0}])
    with pytest.raises(PayloadError, match="give each input as an object"):
        backend.predict(model, [[1.0, 2.0]])
    assert model(a=[1.0, 2.0], b=[3, 4]).tolist() == [3.0, 8.0]


def test_signature_without_batch_dimension_runs_once_per_input(tmp_path: Path, models) -> None:
    deploy_tensorflow_model(tmp_path, "norm", None, models.unbatched())
    backend, model = _load(ModelStore(tmp_path), "norm")
    outputs = backend.predict(model, [np.array([3.0, 4.0, 0.0]), np.array([0.0, 0.0, 2.0])])
    np.testing.assert_allclose(outputs, [5.0, 2.0])
    with pytest.raises(BadRequest, match=r"'v' takes \(3,\), got inputs of shape \(2,\)"):
        backend.predict(model, [np.array([1.0, 2.0])])


def test_an_existing_saved_model_folder_is_copied(tmp_path: Path, exported_dense, models) -> None:
    before = sorted(p.relative_to(exported_dense) for p in exported_dense.rglob("*"))
    store = ModelStore(tmp_path / "store")
    deploy_tensorflow_model(
        store,
        "copied",
        lambda model, xs: [str(r.argmax()) for r in model(np.stack(xs))],
        str(exported_dense),
    )
    directory = store.local_dir("copied", 1)
    assert (
        sorted(
            p.relative_to(directory / "saved_model") for p in (directory / "saved_model").rglob("*")
        )
        == before
    )
    assert sorted(p.relative_to(exported_dense) for p in exported_dense.rglob("*")) == before
    assert Manifest.read(directory).metadata["source"] == "saved_model_folder"
    backend, model = _load(store, "copied")
    expected = [str(int(np.argmax(r))) for r in models.dense_expected(ROWS)]
    assert backend.predict(model, ROWS) == expected


def test_what_cannot_be_saved_is_refused_clearly(tmp_path: Path) -> None:
    import tensorflow as tf

    with pytest.raises(StoreError, match="no SavedModel here"):
        deploy_tensorflow_model(tmp_path, "nope", None, str(tmp_path))
    with pytest.raises(StoreError, match=r"has no signature 'serving_default'.*input_signature"):
        deploy_tensorflow_model(tmp_path, "nosig", None, tf.Module())
    with pytest.raises(StoreError, match=r"not a builtins\.dict"):
        deploy_tensorflow_model(tmp_path, "dict", None, {"w": 1})
    for name in ("nope", "nosig", "dict"):
        assert ModelStore(tmp_path).list_versions(name) == []


def test_claims_keras_models_and_modules_only(models) -> None:
    import tensorflow as tf

    pm = get_plugin_manager()
    assert pm.claim(models.dense()) == "tensorflow"
    assert pm.claim(tf.Module()) == "tensorflow"
    assert pm.claim(np.zeros(3)) != "tensorflow"
    assert pm.claim(tf.constant(1.0)) != "tensorflow"


def test_bad_inputs_are_client_errors(tmp_path: Path, models) -> None:
    deploy_tensorflow_model(tmp_path, "dense", None, models.dense())
    backend, model = _load(ModelStore(tmp_path), "dense")
    with pytest.raises(BadRequest, match=r"'x' takes \(None, 3\), got inputs of shape \(2,\)"):
        backend.predict(model, [np.array([1.0, 2.0])])
    with pytest.raises(BadRequest, match="different shapes cannot form one batch"):
        backend.predict(model, [np.ones(3), np.ones(4)])
    with pytest.raises(PayloadError, match="cannot convert the value to float32"):
        model([["a", "b", "c"]])


def test_devices_and_placement(tmp_path: Path, models) -> None:
    import tensorflow as tf

    from modelcore_tensorflow.devices import tf_device

    assert tf_device("cpu") == "/CPU:0"
    gpus = tf.config.list_physical_devices("GPU")
    assert tf_device("auto") == ("/GPU:0" if gpus else "/CPU:0")
    with pytest.raises(PluginError, match="unknown device"):
        tf_device("tpu")
    with pytest.raises(PluginError, match=r"'cuda:99' asked for, but TensorFlow sees"):
        tf_device("cuda:99")
    if not gpus:
        with pytest.raises(PluginError, match="sees no GPU; use device: auto"):
            tf_device("cuda")
    deploy_tensorflow_model(tmp_path, "dense", None, models.dense())
    backend, model = _load(ModelStore(tmp_path), "dense", device="auto")
    assert backend.place(model, "cpu") is model and model.device == "/CPU:0"
    np.testing.assert_allclose(backend.predict(model, ROWS), models.dense_expected(ROWS))


def test_unload_frees_the_saved_model(tmp_path: Path, models) -> None:
    deploy_tensorflow_model(tmp_path, "dense", None, models.dense())
    backend, model = _load(ModelStore(tmp_path), "dense")
    backend.predict(model, ROWS)
    module, variables = weakref.ref(model.module), [weakref.ref(v) for v in model.module.variables]
    assert variables
    assert backend.unload(model) is True
    gc.collect()
    assert module() is None and all(v() is None for v in variables)
    with pytest.raises(PluginError, match="unloaded"):
        backend.predict(model, ROWS)


def test_unknown_deploy_options_are_refused(tmp_path: Path, models) -> None:
    with pytest.raises(StoreError, match="unknown tensorflow deploy option"):
        modelcore.deploy(tmp_path, "m", None, model=models.dense(), options={"opset": 13})


def test_moving_restores_the_variables_on_the_new_device(tmp_path: Path, models) -> None:
    # The same restore path a move to a GPU takes, on the one device every machine has.
    deploy_tensorflow_model(tmp_path, "dense", None, models.dense())
    backend, model = _load(ModelStore(tmp_path), "dense")
    old = weakref.ref(model.module)
    assert {v.device.rsplit("/", 1)[-1] for v in model.module.variables} == {"device:CPU:0"}
    model.move_to("/device:CPU:0")
    assert model.device == "/device:CPU:0" and old() is None
    np.testing.assert_allclose(backend.predict(model, ROWS), models.dense_expected(ROWS))
