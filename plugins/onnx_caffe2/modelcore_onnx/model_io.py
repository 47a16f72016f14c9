"""Writing ``model.onnx`` (from a ModelProto, a file, bytes or a PyTorch module) and reading its graph.

``onnx`` and ``torch`` are imported inside these functions: a server that
serves only closures imports neither.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelcore.errors import PluginError, StoreError

MODEL_FILE = "model.onnx"
EXTERNAL_DATA_FILE = "model.onnx.data"

# KServe V2 (Open Inference Protocol) datatype names, by ONNX element type name.
_V2_DATATYPES = {
    "FLOAT": "FP32",
    "DOUBLE": "FP64",
    "FLOAT16": "FP16",
    "BFLOAT16": "BF16",
    "STRING": "BYTES",
}


def is_torch_module(model: Any) -> bool:
    """True for a ``torch.nn.Module``, without importing torch when nothing imported it."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def write_model(model: Any, directory: Path, options: Mapping[str, Any]) -> tuple[Path, str]:
    """Write ``model`` as ``directory/model.onnx``; return the path and where it came from.

    ``model`` is an ``onnx.ModelProto``, a path to a ``.onnx`` file, the
    serialized bytes, or a ``torch.nn.Module`` exported with ``options["inputs"]``.
    """
    import onnx

    path = directory / MODEL_FILE
    if is_torch_module(model):
        if "inputs" not in options:
            raise PluginError(
                "exporting a PyTorch module to ONNX needs example inputs: "
                "deploy_pytorch_model(store, name, func, module, inputs) or options={'inputs': x}"
            )
        export_torch(model, options["inputs"], path, options)
        source = "pytorch"
    elif isinstance(model, onnx.ModelProto):
        _save_proto(model, path)
        source = "modelproto"
    elif isinstance(model, (bytes, bytearray, memoryview)):
        _save_proto(_parse(lambda: onnx.load_model_from_string(bytes(model)), "the bytes"), path)
        source = "bytes"
    elif isinstance(model, (str, os.PathLike)):
        file = Path(model)
        if not file.is_file():
            raise StoreError(f"{file}: no such ONNX file")
        # onnx.load also reads external data stored beside the file.
        _save_proto(_parse(lambda: onnx.load(str(file)), str(file)), path)
        source = "file"
    else:
        raise PluginError(
            f"the onnx backend saves an onnx.ModelProto, a path to a .onnx file, bytes or "
            f"(with example inputs) a torch.nn.Module, not a {type(model).__module__}."
            f"{type(model).__qualname__}"
        )
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise StoreError(
            "the model is not a valid ONNX model", cause=f"{type(exc).__name__}: {exc}"
        ) from exc
    return path, source


def export_torch(module: Any, inputs: Any, path: Path, options: Mapping[str, Any]) -> None:
    """Export ``module`` to ``path`` with ``torch.onnx.export``, dimension 0 dynamic.

    torch 2.13's default exporter is the dynamo one (it needs onnxscript): the
    batch dimension is declared with ``dynamic_shapes``, one shared
    ``Dim("batch")`` for every input, and the outputs follow it. The module is
    exported in eval mode (dropout off, batch norm on running statistics).
    """
    import torch

    args = _example_args(inputs)
    batch = torch.export.Dim("batch")
    dynamic_shapes = tuple({0: batch} if a.dim() >= 1 else None for a in args)
    was_training = module.training
    module.eval()
    try:
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            input_names=options.get("input_names"),
            output_names=options.get("output_names"),
            opset_version=options.get("opset_version"),
            verbose=False,
        )
        if program is None:  # only the legacy exporter writing to a file answers None
            raise RuntimeError("torch.onnx.export returned no ONNXProgram")
        # save() writes the weights beside the graph (model.onnx.data) past 2 GB.
        program.save(str(path))
    except Exception as exc:
        raise PluginError(
            f"cannot export the PyTorch module {type(module).__qualname__} to ONNX "
            "with a dynamic batch dimension (dimension 0 of every input)",
            cause=f"{type(exc).__name__}: {exc}",
        ) from exc
    finally:
        module.train(was_training)


def graph_metadata(path: Path) -> dict[str, Any]:
    """Names, shapes and element types of the graph's inputs and outputs, plus opsets."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    # Before IR version 4, weights may be listed among the inputs; callers never feed them.
    weights = {init.name for init in graph.initializer}
    return {
        "inputs": [_value_info(v) for v in graph.input if v.name not in weights],
        "outputs": [_value_info(v) for v in graph.output],
        "ir_version": int(model.ir_version),
        "opsets": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
    }


def _value_info(value: Any) -> dict[str, Any]:
    import numpy as np
    import onnx

    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return {"name": value.name, "type": kind}
    tensor = value.type.tensor_type
    shape: list[int | str | None] | None = None
    if tensor.HasField("shape"):
        shape = [
            int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None)
            for d in tensor.shape.dim
        ]
    onnx_type = onnx.TensorProto.DataType.Name(tensor.elem_type)
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name
    except (KeyError, TypeError, ValueError):
        dtype = None
    return {
        "name": value.name,
        "shape": shape,
        "dtype": dtype,
        "onnx_type": onnx_type,
        "datatype": _V2_DATATYPES.get(onnx_type, onnx_type),
    }


def _save_proto(model: Any, path: Path) -> None:
    import onnx

    if model.ByteSize() >= onnx.checker.MAXIMUM_PROTOBUF:
        # A protobuf message cannot pass 2 GB: the weights go to a file beside the graph.
        onnx.save_model(model, str(path), save_as_external_data=True, location=EXTERNAL_DATA_FILE)
    else:
        onnx.save_model(model, str(path))


def _parse(load: Any, what: str) -> Any:
    try:
        return load()
    except Exception as exc:
        raise StoreError(
            f"{what}: not an ONNX model", cause=f"{type(exc).__name__}: {exc}"
        ) from exc


def _example_args(inputs: Any) -> tuple[Any, ...]:
    """Example inputs as torch.export wants them: a tuple of tensors (numpy arrays converted)."""
    import torch

    items = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    args = []
    for item in items:
        if isinstance(item, torch.Tensor):
            args.append(item)
        else:
            try:
                args.append(torch.as_tensor(item))
            except Exception as exc:
                raise PluginError(
                    f"example inputs must be tensors or arrays, got a {type(item).__name__}"
                ) from exc
    if not args:
        raise PluginError("exporting to ONNX needs at least one example input")
    return tuple(args)
