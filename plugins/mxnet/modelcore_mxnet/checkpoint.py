"""MXNet checkpoints on disk: writing a version's ``model-symbol.json`` + ``model-0000.params``.

Both APIs write the same two files, as Clipper's deployer did: a Module with
``save_checkpoint(prefix, 0)``, a Gluon ``HybridBlock`` with ``export(prefix,
epoch=0)``. mxnet is imported inside these functions only.
"""

from __future__ import annotations

import glob
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelcore.errors import PluginError, StoreError
from modelcore_mxnet.context import import_mxnet

FORMAT = "mxnet-checkpoint"
PREFIX = "model"
EPOCH = 0
SYMBOL_FILE = f"{PREFIX}-symbol.json"
PARAMS_FILE = f"{PREFIX}-{EPOCH:04d}.params"
MODULE = "module"
GLUON = "gluon"

DataShape = dict[str, Any]
"""One model input as the manifest records it: ``{"name", "shape", "dtype"}`` (shape with the batch)."""

_PARAMS = re.compile(r"^(?P<prefix>.+)-(?P<epoch>[0-9]{4})\.params$")


def is_mxnet_model(model: Any) -> bool:
    """True for a ``mx.mod.Module`` or a Gluon ``HybridBlock``, without importing mxnet."""
    mx = sys.modules.get("mxnet")
    if mx is None:
        return False  # no mxnet object can exist in this process
    # Submodules are absent while mxnet itself is still importing.
    mod, gluon = getattr(mx, "mod", None), getattr(mx, "gluon", None)
    return (mod is not None and isinstance(model, mod.Module)) or (
        gluon is not None and isinstance(model, gluon.HybridBlock)
    )


def data_shapes(shapes: Sequence[Any] | None) -> list[DataShape]:
    """``mxnet_data_shapes`` as plain data: ``(name, shape)`` pairs or ``mx.io.DataDesc`` objects."""
    result: list[DataShape] = []
    for item in shapes or ():
        if isinstance(item, dict):
            name, shape, dtype = item.get("name"), item.get("shape"), item.get("dtype")
        else:
            try:
                name, shape = item[0], item[1]
            except (TypeError, IndexError, KeyError):
                raise PluginError(
                    f"mxnet_data_shapes: {item!r} is not a (name, shape) pair or a DataDesc"
                ) from None
            dtype = getattr(item, "dtype", None)  # DataDesc carries one; a tuple does not
        try:
            dims = [int(d) for d in shape]
        except (TypeError, ValueError):
            raise PluginError(
                f"mxnet_data_shapes: the shape of {name!r} is not a tuple of ints"
            ) from None
        result.append({"name": str(name), "shape": dims, "dtype": _dtype_name(dtype)})
    return result


def write_checkpoint(model: Any, directory: Path, shapes: list[DataShape]) -> dict[str, Any]:
    """Save ``model`` into ``directory`` as a checkpoint; return the manifest's ``mxnet`` metadata."""
    mx = import_mxnet()
    if isinstance(model, mx.mod.Module):
        return _save_module(model, directory, shapes)
    if isinstance(model, mx.gluon.HybridBlock):
        return _save_block(mx, model, directory, shapes)
    if isinstance(model, mx.gluon.Block):
        raise PluginError(
            f"{type(model).__qualname__} is a Gluon Block, not a HybridBlock: only a HybridBlock "
            "can be exported to a symbol file. Build it from HybridBlocks (HybridSequential, "
            "hybrid_forward) to deploy it"
        )
    raise PluginError(
        "the mxnet backend saves a mxnet.mod.Module or a mxnet.gluon.HybridBlock, not a "
        f"{type(model).__module__}.{type(model).__qualname__}"
    )


def _save_module(mod: Any, directory: Path, shapes: list[DataShape]) -> dict[str, Any]:
    if not (mod.binded and mod.params_initialized):
        raise PluginError(
            "the Module must be bound and its parameters initialized (or trained) before it is "
            "deployed: mod.bind(data_shapes=...); mod.init_params() or mod.fit(...)"
        )
    names = list(mod.data_names)
    if not shapes:
        shapes = data_shapes(mod.data_shapes)  # what it is bound with now
    by_name = {s["name"]: s for s in shapes}
    if sorted(by_name) != sorted(names):
        raise PluginError(
            f"mxnet_data_shapes name {sorted(by_name)}, and the Module's data_names are {names}: "
            "give one (name, shape) per data input, batch dimension included"
        )
    mod.save_checkpoint(str(directory / PREFIX), EPOCH)
    return {
        "api": MODULE,
        "data_shapes": [by_name[n] for n in names],  # in the Module's order, which binds
        "data_names": names,
        "label_names": list(mod.label_names or []),
        "output_names": list(mod.output_names),
        "symbol_file": SYMBOL_FILE,
        "params_file": PARAMS_FILE,
    }


def _save_block(mx: Any, block: Any, directory: Path, shapes: list[DataShape]) -> dict[str, Any]:
    # export() needs the graph that a hybridized block records in its first forward.
    was_active = bool(getattr(block, "_active", False))
    has_graph = was_active and bool(getattr(block, "_cached_graph", ()))
    try:
        if not has_graph:
            if not shapes:
                raise PluginError(
                    f"the HybridBlock {type(block).__qualname__} has not run hybridized yet: give "
                    "mxnet_data_shapes=[('data', (batch, ...))] so it can run once on zeros "
                    "before export"
                )
            block.hybridize()
            _run_on_zeros(mx, block, shapes)
        block.export(str(directory / PREFIX), epoch=EPOCH)
    finally:
        if not was_active:
            block.hybridize(False)  # the caller's block keeps its mode
    inputs = graph_inputs(mx, directory / SYMBOL_FILE, directory / PARAMS_FILE)
    if shapes and len(shapes) != len(inputs):
        raise PluginError(
            f"mxnet_data_shapes has {len(shapes)} input(s), and the exported graph has "
            f"{len(inputs)} ({', '.join(inputs)})"
        )
    # export() names the inputs data, or data0, data1, ...: the shapes follow in order.
    named = [{**s, "name": n} for s, n in zip(shapes, inputs, strict=False)]
    return {
        "api": GLUON,
        "data_shapes": named,
        "data_names": inputs,
        "label_names": [],
        "output_names": list(mx.sym.load(str(directory / SYMBOL_FILE)).list_outputs()),
        "block_class": f"{type(block).__module__}.{type(block).__qualname__}",
        "symbol_file": SYMBOL_FILE,
        "params_file": PARAMS_FILE,
    }


def _run_on_zeros(mx: Any, block: Any, shapes: list[DataShape]) -> None:
    context = _block_context(block) or mx.cpu()
    zeros = [mx.nd.zeros(tuple(s["shape"]), ctx=context, dtype=s["dtype"]) for s in shapes]
    try:
        with mx.autograd.predict_mode():
            block(*zeros)
    except Exception as exc:
        raise PluginError(
            f"the HybridBlock {type(block).__qualname__} failed on zeros of mxnet_data_shapes "
            f"{[(s['name'], tuple(s['shape'])) for s in shapes]}; is it initialized?",
            cause=f"{type(exc).__name__}: {exc}",
        ) from exc


def _block_context(block: Any) -> Any:
    for param in block.collect_params().values():
        try:
            return param.list_ctx()[0]
        except Exception:  # not initialized yet (deferred): forward decides
            continue
    return None


def graph_inputs(mx: Any, symbol_path: Path, params_path: Path) -> list[str]:
    """The graph's arguments that are not parameters in ``params_path``: its inputs (and labels)."""
    symbol = mx.sym.load(str(symbol_path))
    stored = {key.split(":", 1)[-1] for key in mx.nd.load(str(params_path))}
    return [name for name in symbol.list_arguments() if name not in stored]


def find_bare_checkpoint(directory: Path) -> tuple[Path, Path]:
    """The symbol and params files of a bare folder: one ``<prefix>-symbol.json``, highest epoch."""
    symbols = sorted(directory.glob("*-symbol.json"))
    if len(symbols) != 1:
        found = ", ".join(p.name for p in symbols) or "none"
        raise StoreError(
            f"{directory}: a bare mxnet version needs exactly one <prefix>-symbol.json and its "
            f"<prefix>-NNNN.params (found {found})"
        )
    prefix = symbols[0].name[: -len("-symbol.json")]
    epochs = sorted(
        (int(m.group("epoch")), path)
        for path in directory.glob(f"{glob.escape(prefix)}-*.params")
        if (m := _PARAMS.match(path.name)) and m.group("prefix") == prefix
    )
    if not epochs:
        raise StoreError(f"{directory}: {symbols[0].name} has no {prefix}-NNNN.params beside it")
    return symbols[0], epochs[-1][1]  # the highest epoch: the last one training wrote


def _dtype_name(dtype: Any) -> str:
    import numpy as np

    return np.dtype(dtype if dtype is not None else np.float32).name
