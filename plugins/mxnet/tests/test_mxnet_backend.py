"""What is particular to the mxnet backend: both APIs' files and metadata, bare folders, devices."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import modelcore
from modelcore.errors import BadRequest, LoadError, PluginError, PredictionError, StoreError
from modelcore.plugins import get_plugin_manager
from modelcore.store import ModelStore
from modelcore_mxnet import deploy_mxnet_model
from modelcore_mxnet.testing import (
    mlp_block,
    mlp_module,
    mlp_reference,
    mlp_weights,
    save_bare_checkpoint,
)

mx = pytest.importorskip("mxnet")

W1 = mlp_weights(seed=1)
W2 = mlp_weights(seed=2)
X = [np.array([1.0, 2.0, 3.0]), np.array([0.0, -1.0, 0.5]), np.array([-2.0, 0.5, 1.0])]
HAS_GPU = mx.context.num_gpus() > 0


def backend():
    return get_plugin_manager().backend("mxnet")


def load(store: Path, name: str, version: int = 1, device: str = "cpu"):
    ms = ModelStore(store)
    return backend().load(ms.local_dir(name, version), ms.read_manifest(name, version), device)


def close(actual, expected) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-5, atol=1e-6)


def module_predict():
    def predict(module, xs):
        return [row.tolist() for row in module.predict(mx.nd.array(np.stack(xs))).asnumpy()]

    return predict


# -- saving ------------------------------------------------------------------------
def test_a_module_is_saved_as_a_checkpoint_with_its_data_shapes(tmp_path: Path) -> None:
    version = deploy_mxnet_model(
        tmp_path, "mlp", module_predict(), mlp_module(W1, softmax=True), [("data", (4, 3))]
    )
    manifest = ModelStore(tmp_path).read_manifest("mlp", version)
    assert (manifest.backend, manifest.format, manifest.has_function) == (
        "mxnet",
        "mxnet-checkpoint",
        True,
    )
    assert manifest.frameworks == {"mxnet": "1.9.1"}
    assert {f.path for f in manifest.files} == {
        "model-symbol.json",
        "model-0000.params",
        "func.pkl",
    }
    meta = manifest.metadata["mxnet"]
    assert meta["api"] == "module"
    assert meta["data_shapes"] == [{"name": "data", "shape": [4, 3], "dtype": "float32"}]
    assert (meta["data_names"], meta["label_names"]) == (["data"], ["softmax_label"])
    assert meta["output_names"] == ["softmax_output"]
    # The files are MXNet's own: load_checkpoint reads them back unchanged.
    directory = ModelStore(tmp_path).local_dir("mlp", version)
    _, args, _ = mx.model.load_checkpoint(str(directory / "model"), 0)
    close(args["fc1_weight"].asnumpy(), W1["fc1_weight"])


def test_a_module_bound_shapes_are_used_when_none_are_given(tmp_path: Path) -> None:
    modelcore.deploy(tmp_path, "mlp", None, model=mlp_module(W1, batch=5))
    meta = ModelStore(tmp_path).read_manifest("mlp", 1).metadata["mxnet"]
    assert meta["data_shapes"] == [{"name": "data", "shape": [5, 3], "dtype": "float32"}]


def test_a_data_desc_carries_its_dtype(tmp_path: Path) -> None:
    desc = mx.io.DataDesc("data", (2, 3), np.float32)
    deploy_mxnet_model(tmp_path, "mlp", None, mlp_module(W1), [desc])
    meta = ModelStore(tmp_path).read_manifest("mlp", 1).metadata["mxnet"]
    assert meta["data_shapes"] == [{"name": "data", "shape": [2, 3], "dtype": "float32"}]


def test_a_gluon_block_is_hybridized_run_once_and_exported(tmp_path: Path) -> None:
    block = mlp_block(W1)  # not hybridized, never run
    deploy_mxnet_model(tmp_path, "net", None, block, [("x", (1, 3))])
    assert not block._active, "the caller's block keeps its mode"
    manifest = ModelStore(tmp_path).read_manifest("net", 1)
    meta = manifest.metadata["mxnet"]
    assert meta["api"] == "gluon" and manifest.format == "mxnet-checkpoint"
    assert meta["data_names"] == ["data"]  # export's name for the input, whatever it was given as
    assert meta["data_shapes"] == [{"name": "data", "shape": [1, 3], "dtype": "float32"}]
    assert meta["block_class"].endswith("HybridSequential")
    assert {f.path for f in manifest.files} == {"model-symbol.json", "model-0000.params"}
    model = load(tmp_path, "net")
    assert isinstance(model.net, mx.gluon.nn.SymbolBlock)
    close(backend().predict(model, X), mlp_reference(W1, X))


def test_a_block_that_already_ran_hybridized_needs_no_shapes(tmp_path: Path) -> None:
    block = mlp_block(W1, hybridize=True)
    block(mx.nd.zeros((1, 3)))
    deploy_mxnet_model(tmp_path, "net", None, block)
    assert block._active
    assert ModelStore(tmp_path).read_manifest("net", 1).metadata["mxnet"]["data_shapes"] == []
    close(backend().predict(load(tmp_path, "net"), X), mlp_reference(W1, X))


def test_modelcore_deploy_claims_modules_and_hybrid_blocks_only() -> None:
    pm = get_plugin_manager()
    assert pm.claim(mlp_module(W1)) == "mxnet"
    assert pm.claim(mlp_block(W1)) == "mxnet"
    assert pm.claim(mx.gluon.nn.Block()) != "mxnet"
    assert pm.claim(mx.nd.zeros(3)) != "mxnet"
    assert pm.claim(object()) is None


def test_models_that_cannot_be_saved_are_refused_before_publishing(tmp_path: Path) -> None:
    unbound = mx.mod.Module(mx.sym.var("data") * 2, label_names=None)
    with pytest.raises(PluginError, match="must be bound"):
        deploy_mxnet_model(tmp_path, "bad", None, unbound, [("data", (1, 3))])
    with pytest.raises(PluginError, match="data_names are"):
        deploy_mxnet_model(tmp_path, "bad", None, mlp_module(W1), [("input", (1, 3))])
    with pytest.raises(PluginError, match="not a HybridBlock"):
        deploy_mxnet_model(tmp_path, "bad", None, mx.gluon.nn.Block(), [("data", (1, 3))])
    with pytest.raises(PluginError, match="give mxnet_data_shapes"):
        deploy_mxnet_model(tmp_path, "bad", None, mlp_block(W1))
    uninitialized = mx.gluon.nn.Dense(2)
    with pytest.raises(PluginError, match="is it initialized"):
        deploy_mxnet_model(tmp_path, "bad", None, uninitialized, [("data", (1, 3))])
    assert not uninitialized._active
    with pytest.raises(PluginError, match=r"not a \(name, shape\)"):
        deploy_mxnet_model(tmp_path, "bad", None, mlp_module(W1), [7])
    with pytest.raises(PluginError, match=r"not a builtins\.dict"):
        modelcore.deploy(tmp_path, "bad", None, model={"not": "a model"}, backend="mxnet")
    assert ModelStore(tmp_path).list_versions("bad") == []


# -- loading and predicting -----------------------------------------------------------
def test_the_function_gets_the_bound_module_at_any_batch_size(tmp_path: Path) -> None:
    # Bound for batches of 2; the graph's SoftmaxOutput has a label input that inference omits.
    deploy_mxnet_model(
        tmp_path, "mlp", module_predict(), mlp_module(W1, softmax=True), [("data", (2, 3))]
    )
    model = load(tmp_path, "mlp")
    assert isinstance(model.net, mx.mod.Module) and model.net.binded
    assert not model.net.for_training
    for batch in (X[:1], X, X * 3, X[:2]):
        close(backend().predict(model, batch), mlp_reference(W1, batch, softmax=True))


def test_the_function_gets_the_symbol_block(tmp_path: Path) -> None:
    def predict(block, xs):
        assert isinstance(block, mx.gluon.nn.SymbolBlock)
        return [f"{v:.3f}" for v in block(mx.nd.array(np.stack(xs))).asnumpy()[:, 0]]

    deploy_mxnet_model(tmp_path, "net", predict, mlp_block(W1), [("data", (1, 3))])
    got = backend().predict(load(tmp_path, "net"), X)
    assert got == [f"{v:.3f}" for v in mlp_reference(W1, X)[:, 0]]


def test_a_gluon_block_with_two_outputs_answers_a_pair_per_input(tmp_path: Path) -> None:
    class TwoHeads(mx.gluon.HybridBlock):
        def __init__(self) -> None:
            super().__init__()
            self.dense = mx.gluon.nn.Dense(2, in_units=3)

        def hybrid_forward(self, F, x):
            y = self.dense(x)
            return y, F.sum(x, axis=1)

    block = TwoHeads()
    block.initialize()
    block.dense.weight.set_data(mx.nd.array(W1["fc2_weight"][:, :3]))
    block.dense.bias.set_data(mx.nd.zeros(2))
    deploy_mxnet_model(tmp_path, "two", None, block, [("data", (1, 3))])
    got = backend().predict(load(tmp_path, "two"), X[:2])
    assert len(got) == 2 and all(len(row) == 2 for row in got)
    for x, (first, total) in zip(X[:2], got, strict=True):
        close(first, W1["fc2_weight"][:, :3] @ x)
        assert total == pytest.approx(float(np.sum(x)), rel=1e-6)


def test_default_predict_rejects_what_it_cannot_batch(tmp_path: Path) -> None:
    deploy_mxnet_model(tmp_path, "mlp", None, mlp_module(W1), [("data", (2, 3))])
    model = load(tmp_path, "mlp")
    with pytest.raises(BadRequest, match="different shapes"):
        backend().predict(model, [np.ones(3), np.ones(2)])
    with pytest.raises(BadRequest, match="needs numbers"):
        backend().predict(model, ["a", "b"])
    with pytest.raises(PredictionError, match=r"failed on a batch of shape \(1, 5\)"):
        backend().predict(model, [np.ones(5)])
    close(backend().predict(model, X), mlp_reference(W1, X))  # still serves after a bad batch


def test_a_version_whose_weights_do_not_fit_fails_to_load(tmp_path: Path) -> None:
    deploy_mxnet_model(tmp_path, "mlp", None, mlp_module(W1), [("data", (2, 3))])
    directory = ModelStore(tmp_path).local_dir("mlp", 1)
    mx.nd.save(str(directory / "model-0000.params"), {"arg:fc1_weight": mx.nd.zeros((4, 3))})
    with pytest.raises(LoadError, match="cannot build the mxnet module"):
        load(tmp_path, "mlp")


def test_several_data_inputs_need_a_function(tmp_path: Path) -> None:
    a, b = mx.sym.var("a"), mx.sym.var("b")
    out = mx.sym.FullyConnected(a, num_hidden=2, name="fc") + b
    mod = mx.mod.Module(out, data_names=["a", "b"], label_names=None)
    mod.bind(data_shapes=[("a", (1, 3)), ("b", (1, 2))], for_training=False)
    mod.init_params(mx.init.One())

    def predict(module, xs):
        batch = np.stack(xs)
        module.forward(mx.io.DataBatch([mx.nd.array(batch[:, :3]), mx.nd.array(batch[:, 3:])]))
        return module.get_outputs()[0].asnumpy().tolist()

    deploy_mxnet_model(tmp_path, "two", predict, mod, [("b", (1, 2)), ("a", (1, 3))])
    meta = ModelStore(tmp_path).read_manifest("two", 1).metadata["mxnet"]
    assert [s["name"] for s in meta["data_shapes"]] == ["a", "b"]  # the Module's order
    got = backend().predict(load(tmp_path, "two"), [np.array([1.0, 2.0, 3.0, 10.0, 20.0])])
    assert got == [[16.0, 26.0]]  # ones(2, 3) @ x (mx.init.One leaves biases at 0), plus b
    deploy_mxnet_model(tmp_path, "two", None, mod)
    with pytest.raises(LoadError, match="exactly one input"):
        load(tmp_path, "two", 2)


def test_concurrent_predictions_take_turns(tmp_path: Path) -> None:
    deploy_mxnet_model(tmp_path, "mlp", None, mlp_module(W1, softmax=True), [("data", (1, 3))])
    model = load(tmp_path, "mlp")
    batches = [[np.full(3, float(k))] * (k % 5 + 1) for k in range(24)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda xs: backend().predict(model, xs), batches))
    for xs, got in zip(batches, results, strict=True):
        close(got, mlp_reference(W1, xs, softmax=True))


# -- bare folders -----------------------------------------------------------------------
def test_a_bare_checkpoint_is_served_with_the_default_predict(tmp_path: Path) -> None:
    # A training script's folder: two epochs saved; the last one is served.
    save_bare_checkpoint(W2, str(tmp_path / "net"), epoch=1, softmax=True)
    save_bare_checkpoint(W1, str(tmp_path / "net"), epoch=12, softmax=True)
    model = backend().load(tmp_path, None, "cpu")
    assert model.func is None and model.api == "module"
    close(backend().predict(model, X), mlp_reference(W1, X, softmax=True))
    close(backend().predict(model, X[:1]), mlp_reference(W1, X[:1], softmax=True))


def test_a_bare_checkpoint_binds_on_its_first_good_batch(tmp_path: Path) -> None:
    save_bare_checkpoint(W1, str(tmp_path / "mlp"))
    model = backend().load(tmp_path, None, "auto")
    with pytest.raises(PredictionError, match=r"shape \(1, 5\)"):
        backend().predict(model, [np.ones(5)])
    close(backend().predict(model, X), mlp_reference(W1, X))


def test_bare_folders_that_cannot_be_served_say_why(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"exactly one <prefix>-symbol\.json"):
        backend().load(tmp_path, None, "cpu")
    mlp_sym = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=2)
    mlp_sym.save(str(tmp_path / "net-symbol.json"))
    with pytest.raises(StoreError, match=r"no net-NNNN\.params"):
        backend().load(tmp_path, None, "cpu")
    (tmp_path / "net-0000.params").write_bytes(b"not a params file")
    with pytest.raises(StoreError, match="cannot read the checkpoint"):
        backend().load(tmp_path, None, "cpu")
    mlp_sym.save(str(tmp_path / "other-symbol.json"))
    with pytest.raises(StoreError, match=r"found net-symbol\.json, other-symbol\.json"):
        backend().load(tmp_path, None, "cpu")


# -- devices and unloading ----------------------------------------------------------------
@pytest.mark.skipif(HAS_GPU, reason="this mxnet sees a GPU")
def test_cuda_without_a_gpu_is_a_clear_error_and_auto_takes_the_cpu(tmp_path: Path) -> None:
    deploy_mxnet_model(tmp_path, "mlp", None, mlp_module(W1), [("data", (2, 3))])
    for device in ("cuda", "cuda:1"):
        with pytest.raises(PluginError, match="sees no GPU"):
            load(tmp_path, "mlp", device=device)
    with pytest.raises(PluginError, match="unknown device"):
        load(tmp_path, "mlp", device="tpu")
    model = load(tmp_path, "mlp", device="auto")
    assert model.context == mx.cpu()
    assert backend().place(model, "cpu") is model, "already there: nothing reloaded"
    with pytest.raises(PluginError, match="sees no GPU"):
        backend().place(model, "cuda:0")


def test_unload_drops_the_model(tmp_path: Path) -> None:
    deploy_mxnet_model(tmp_path, "mlp", module_predict(), mlp_module(W1), [("data", (2, 3))])
    model = load(tmp_path, "mlp")
    assert backend().unload(model) is True
    assert model.net is None and model.func is None
    with pytest.raises(PredictionError, match="unloaded"):
        backend().predict(model, X)


@pytest.mark.gpu
def test_gpu_placement(tmp_path: Path) -> None:
    if not HAS_GPU:
        pytest.skip("needs a CUDA build of mxnet (mxnet-cu112) that sees a GPU")
    deploy_mxnet_model(tmp_path, "mlp", None, mlp_module(W1), [("data", (2, 3))])
    deploy_mxnet_model(tmp_path, "net", None, mlp_block(W1), [("data", (1, 3))])
    for name in ("mlp", "net"):
        model = load(tmp_path, name, device="cuda:0")
        assert model.context == mx.gpu(0)
        close(backend().predict(model, X), mlp_reference(W1, X))
        model = backend().place(model, "cpu")
        assert model.context == mx.cpu()
        close(backend().predict(model, X), mlp_reference(W1, X))
        model = backend().place(model, "auto")
        assert model.context == mx.gpu(0)
        assert backend().unload(model) is True


def test_predictions_do_not_share_state_between_loaded_versions(tmp_path: Path) -> None:
    deploy_mxnet_model(tmp_path, "mlp", None, mlp_module(W1), [("data", (2, 3))])
    deploy_mxnet_model(tmp_path, "mlp", None, mlp_module(W2), [("data", (2, 3))])
    first, second = load(tmp_path, "mlp", 1), load(tmp_path, "mlp", 2)
    barrier = threading.Barrier(2)

    def run(model, weights):
        barrier.wait()
        for _ in range(10):
            close(backend().predict(model, X), mlp_reference(weights, X))

    threads = [threading.Thread(target=run, args=a) for a in ((first, W1), (second, W2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
