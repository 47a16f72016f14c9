"""A loaded MXNet version: a bound Module or a SymbolBlock, its function, and the default predict.

MXNet's Python frontend is not thread-safe (a Module keeps its outputs in its
executor, and reshapes it in place for a new batch size), so the predictions
of one loaded version run one at a time, under its lock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelcore.errors import BadRequest, LoadError, PredictionError, StoreError
from modelcore_mxnet.checkpoint import (
    GLUON,
    MODULE,
    DataShape,
    find_bare_checkpoint,
)
from modelcore_mxnet.context import import_mxnet

if TYPE_CHECKING:
    from modelcore.manifest import Manifest


@dataclass
class MxnetModel:
    """What ``modelcore_load`` returns. ``func(model.net, inputs)`` is the user's function."""

    net: Any
    """A ``mx.mod.Module`` bound for inference (api ``module``) or a ``gluon.nn.SymbolBlock``."""
    api: str
    func: Callable[..., Any] | None
    context: Any
    """The ``mx.Context`` the parameters are on."""
    data_names: list[str]
    dtype: str
    directory: Path
    manifest: Manifest | None
    pending_params: tuple[dict[str, Any], dict[str, Any]] | None = None
    """A bare Module's weights, set when the first batch binds it (its shape comes from requests)."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def predict(self, inputs: list[Any]) -> list[Any]:
        with self.lock:
            if self.net is None:
                raise PredictionError("this mxnet model version was unloaded")
            if self.func is not None:
                return self.func(self.net, inputs)
            return self._default_predict(inputs)

    def placed(self, context: Any) -> MxnetModel:
        """This version on ``context``: the same object when it is there, else loaded anew there."""
        if context == self.context:
            return self
        fresh = open_model(self.directory, self.manifest, context, self.func)
        self.release()
        return fresh

    def release(self) -> None:
        with self.lock:
            self.net = None
            self.func = None
            self.pending_params = None

    def _default_predict(self, inputs: list[Any]) -> list[Any]:
        """Stack ``inputs`` into one batch, run the model once, answer one row (a list) per input."""
        mx = import_mxnet()
        batch = mx.nd.array(_stack(inputs), ctx=self.context, dtype=self.dtype)
        try:
            if self.api == GLUON:
                out = self.net(batch)
                outputs = list(out) if isinstance(out, (list, tuple)) else [out]
            else:
                if self.pending_params is not None:
                    self._bind_bare(batch.shape, *self.pending_params)
                # A batch of another size reshapes the bound executor (labels re-inferred).
                self.net.forward(mx.io.DataBatch([batch]), is_train=False)
                outputs = self.net.get_outputs()
            rows = [o.asnumpy() for o in outputs]  # waits for the result: errors surface here
        except mx.base.MXNetError as exc:
            raise PredictionError(
                f"the mxnet model failed on a batch of shape {batch.shape} ({self.dtype})",
                cause=str(exc).strip().splitlines()[-1] if str(exc).strip() else None,
            ) from exc
        return output_rows(rows, len(inputs))

    def _bind_bare(
        self, shape: tuple[int, ...], arg_params: dict[str, Any], aux_params: dict[str, Any]
    ) -> None:
        """Bind a bare folder's Module with the first batch's shape, then set its weights."""
        template = self.net
        module = inference_module_class()(
            template.symbol,
            data_names=template.data_names,
            label_names=template.label_names,
            context=self.context,
        )
        # A fresh Module each try: one that failed to bind (a bad first batch) stays unbound.
        shapes = [{"name": self.data_names[0], "shape": list(shape), "dtype": self.dtype}]
        bind_module(module, shapes, arg_params, aux_params)
        self.net, self.pending_params = module, None


def open_model(
    directory: Path, manifest: Manifest | None, context: Any, func: Callable[..., Any] | None
) -> MxnetModel:
    """Load the checkpoint in ``directory`` with the API its manifest names (Module when bare)."""
    mx = import_mxnet()
    meta = manifest.metadata.get("mxnet", {}) if manifest is not None else {}
    if manifest is None:
        symbol_path, params_path = find_bare_checkpoint(directory)
        api = MODULE
    else:
        symbol_path = directory / meta.get("symbol_file", "model-symbol.json")
        params_path = directory / meta.get("params_file", "model-0000.params")
        api = meta.get("api", MODULE)
        if api not in (MODULE, GLUON):
            raise StoreError(
                f"{manifest.name} v{manifest.version}: unknown mxnet api {api!r} "
                "(this plugin reads module and gluon); upgrade modelcore-mxnet"
            )
    for path in (symbol_path, params_path):
        if not path.is_file():
            raise StoreError(f"{directory}: no {path.name} in this version")
    try:
        symbol = mx.sym.load(str(symbol_path))
        arg_params, aux_params = _read_params(mx, params_path)
    except Exception as exc:
        raise StoreError(
            f"{directory}: cannot read the checkpoint {symbol_path.name} + {params_path.name}",
            cause=f"{type(exc).__name__}: {exc}",
        ) from exc
    inputs = [a for a in symbol.list_arguments() if a not in arg_params]
    labels = meta.get("label_names")
    if labels is None:  # bare: MXNet's loss layers name their label input <name>_label
        labels = [a for a in inputs if a.endswith("label")]
    data_names = meta.get("data_names") or [a for a in inputs if a not in labels]
    shapes: list[DataShape] = meta.get("data_shapes") or []
    dtype = shapes[0]["dtype"] if shapes else _params_dtype(arg_params)
    if func is None and len(data_names) != 1:
        raise LoadError(
            f"{directory}: the default mxnet predict feeds exactly one input, and this graph has "
            f"{len(data_names)} ({', '.join(data_names)}); deploy it with a predict function"
        )
    try:
        if api == GLUON:
            net = _symbol_block(mx, symbol, data_names, dtype, params_path, context)
            pending = None
        else:
            net = inference_module_class()(
                symbol, data_names=data_names, label_names=labels, context=context
            )
            pending = (arg_params, aux_params)
            if shapes:  # bound now, so a version whose weights do not fit never serves
                bind_module(net, shapes, arg_params, aux_params)
                pending = None
    except Exception as exc:
        raise LoadError(
            f"{directory}: cannot build the mxnet {api} from {symbol_path.name}",
            cause=f"{type(exc).__name__}: {exc}",
        ) from exc
    return MxnetModel(
        net=net,
        api=api,
        func=func,
        context=context,
        data_names=list(data_names),
        dtype=dtype,
        directory=directory,
        manifest=manifest,
        pending_params=pending,
    )


def bind_module(
    mod: Any, shapes: list[DataShape], arg_params: dict[str, Any], aux_params: dict[str, Any]
) -> None:
    """Bind ``mod`` for inference with ``shapes`` and set its weights (every one must be there)."""
    mx = import_mxnet()
    descs = [mx.io.DataDesc(s["name"], tuple(s["shape"]), s["dtype"]) for s in shapes]
    mod.bind(
        data_shapes=descs,
        label_shapes=label_shapes(mod.symbol, descs, mod.label_names) or None,
        for_training=False,
    )
    mod.set_params(arg_params, aux_params)


def label_shapes(
    symbol: Any, descs: list[Any], names: list[str]
) -> list[tuple[str, tuple[int, ...]]]:
    """The shapes of the label inputs that ``descs`` imply (a SoftmaxOutput's label is ``(batch,)``)."""
    if not names:
        return []
    arg_shapes, _, _ = symbol.infer_shape_partial(**{d.name: d.shape for d in descs})
    shapes = dict(zip(symbol.list_arguments(), arg_shapes, strict=True))
    return [(name, tuple(shapes[name])) for name in names]


@functools.cache
def inference_module_class() -> type:
    """``mx.mod.Module`` that re-infers its label shapes when a new batch size reshapes it.

    ``Module.forward`` (and so ``Module.predict``) reshapes the executor for a
    batch of another size, but passes no label shapes for inference; a graph
    that ends in a loss layer (``SoftmaxOutput``) then fails with "Shape of
    unspecified arg: softmax_label changed". Inferring them keeps every batch
    size working, for the default predict and the user's function alike.
    """
    mx = import_mxnet()

    class InferenceModule(mx.mod.Module):
        def reshape(self, data_shapes: Any, label_shapes_: Any = None) -> None:
            if label_shapes_ is None and self.label_names:
                descs = [
                    d if isinstance(d, mx.io.DataDesc) else mx.io.DataDesc(*d) for d in data_shapes
                ]
                label_shapes_ = label_shapes(self.symbol, descs, self.label_names)
            super().reshape(data_shapes, label_shapes_)

    return InferenceModule


def _symbol_block(
    mx: Any, symbol: Any, names: list[str], dtype: str, params_path: Path, context: Any
) -> Any:
    # SymbolBlock.imports, with typed input variables: untyped ones make every load warn
    # "Cannot decide type for the following arguments".
    inputs = [mx.sym.var(name, dtype=dtype) for name in names]
    block = mx.gluon.nn.SymbolBlock(symbol, inputs)
    block.collect_params().load(
        str(params_path), ctx=context, cast_dtype=True, dtype_source="saved"
    )
    return block


def _read_params(mx: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``arg:``/``aux:`` entries of a params file, as ``mx.model.load_checkpoint`` splits them."""
    arg_params: dict[str, Any] = {}
    aux_params: dict[str, Any] = {}
    for key, value in mx.nd.load(str(path)).items():
        kind, _, name = key.partition(":")
        if kind == "aux":
            aux_params[name] = value
        else:
            arg_params[name if kind == "arg" else key] = value
    return arg_params, aux_params


def _params_dtype(arg_params: dict[str, Any]) -> str:
    for value in arg_params.values():
        if np.dtype(value.dtype).kind == "f":
            return np.dtype(value.dtype).name
    return "float32"


def _stack(inputs: list[Any]) -> np.ndarray:
    try:
        batch = np.stack([np.asarray(x) for x in inputs])
    except ValueError as exc:
        raise BadRequest(
            "the inputs have different shapes and cannot be stacked into one batch", cause=str(exc)
        ) from exc
    if batch.dtype.kind not in "biuf":
        raise BadRequest(
            f"the default mxnet predict needs numbers, got {batch.dtype} inputs; "
            "deploy a predict function for other inputs"
        )
    return batch


def output_rows(outputs: list[np.ndarray], n: int) -> list[Any]:
    """One row per input: a list per input for one output, a list of rows for several."""
    for out in outputs:
        if out.ndim == 0 or out.shape[0] != n:
            raise PredictionError(
                f"the model answered an output of shape {out.shape} for a batch of {n}; "
                "the default predict needs one output row per input"
            )
    if len(outputs) == 1:
        return outputs[0].tolist()
    return [[out[i].tolist() for out in outputs] for i in range(n)]
