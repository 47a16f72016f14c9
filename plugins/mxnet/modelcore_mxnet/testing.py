"""Tiny real MXNet models with fixed weights, and their answers in numpy, for tests.

mxnet is imported inside the builders, so importing this module needs only numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Weights = dict[str, np.ndarray]


def mlp_weights(seed: int = 0, scale: float = 1.0) -> Weights:
    """Weights of a 3 -> 4 (relu) -> 2 MLP, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    return {
        "fc1_weight": (scale * rng.normal(size=(4, 3))).astype(np.float32),
        "fc1_bias": (scale * rng.normal(size=4)).astype(np.float32),
        "fc2_weight": (scale * rng.normal(size=(2, 4))).astype(np.float32),
        "fc2_bias": (scale * rng.normal(size=2)).astype(np.float32),
    }


def mlp_reference(weights: Weights, inputs: list[Any], softmax: bool = False) -> np.ndarray:
    """What the MLP answers for ``inputs``, computed in float32 numpy."""
    x = np.stack([np.asarray(v, dtype=np.float32) for v in inputs])
    hidden = np.maximum(x @ weights["fc1_weight"].T + weights["fc1_bias"], 0)
    out = hidden @ weights["fc2_weight"].T + weights["fc2_bias"]
    if softmax:
        exp = np.exp(out - out.max(axis=1, keepdims=True))
        out = exp / exp.sum(axis=1, keepdims=True)
    return out


def mlp_symbol(softmax: bool = False) -> Any:
    """The MLP as a symbol; with ``softmax`` it ends in a ``SoftmaxOutput`` (a label input)."""
    import mxnet as mx

    data = mx.sym.var("data")
    hidden = mx.sym.Activation(mx.sym.FullyConnected(data, num_hidden=4, name="fc1"), "relu")
    out = mx.sym.FullyConnected(hidden, num_hidden=2, name="fc2")
    return mx.sym.SoftmaxOutput(out, name="softmax") if softmax else out


def mlp_module(weights: Weights, batch: int = 2, softmax: bool = False) -> Any:
    """A ``mx.mod.Module`` bound for ``(batch, 3)`` inputs, holding ``weights``."""
    import mxnet as mx

    labels = ["softmax_label"] if softmax else None
    mod = mx.mod.Module(mlp_symbol(softmax), data_names=["data"], label_names=labels)
    mod.bind(
        data_shapes=[("data", (batch, 3))],
        label_shapes=[("softmax_label", (batch,))] if softmax else None,
        for_training=False,
    )
    mod.init_params(arg_params={k: mx.nd.array(v) for k, v in weights.items()})
    return mod


def mlp_block(weights: Weights, hybridize: bool = False) -> Any:
    """The same MLP as a Gluon ``HybridSequential`` holding ``weights``."""
    import mxnet as mx

    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(4, in_units=3, activation="relu"), mx.gluon.nn.Dense(2, in_units=4))
    net.initialize()
    for layer, prefix in zip(net, ("fc1", "fc2"), strict=True):
        layer.weight.set_data(mx.nd.array(weights[f"{prefix}_weight"]))
        layer.bias.set_data(mx.nd.array(weights[f"{prefix}_bias"]))
    if hybridize:
        net.hybridize()
    return net


def save_bare_checkpoint(
    weights: Weights, prefix: str, epoch: int = 0, softmax: bool = False
) -> None:
    """Write ``<prefix>-symbol.json`` and ``<prefix>-NNNN.params`` as training scripts do."""
    import mxnet as mx

    params = {k: mx.nd.array(v) for k, v in weights.items()}
    mx.model.save_checkpoint(prefix, epoch, mlp_symbol(softmax), params, {})
