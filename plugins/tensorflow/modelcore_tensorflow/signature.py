"""Finding a SavedModel folder and describing its serving signature without loading it.

The description is read from ``saved_model.pb`` itself (a protobuf), so a
deploy records the signature's names, dtypes and shapes without running any
of the model's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelcore.errors import StoreError

DEFAULT_SIGNATURE = "serving_default"
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
SAVED_MODEL_DIR = "saved_model"
"""Where a deploy writes the SavedModel inside a version folder."""


def is_saved_model(path: Path) -> bool:
    """Whether ``path`` is a folder holding a SavedModel (``saved_model.pb`` or ``.pbtxt``)."""
    return any((path / name).is_file() for name in SAVED_MODEL_FILES)


def find_saved_model(directory: Path) -> Path:
    """The SavedModel in a version folder: the folder itself (TF Serving's layout) or ``saved_model/``."""
    for candidate in (directory, directory / SAVED_MODEL_DIR):
        if is_saved_model(candidate):
            return candidate
    found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    raise StoreError(
        f"{directory}: no SavedModel here (looked for saved_model.pb in it and in "
        f"{SAVED_MODEL_DIR}/; found {', '.join(found) or 'nothing'})"
    )


def describe_signature(saved_model: Path, name: str = DEFAULT_SIGNATURE) -> dict[str, Any]:
    """The signature ``name`` of a SavedModel folder as plain data for the manifest.

    ``{"name": ..., "inputs": {input: {"dtype": "float32", "shape": [None, 3]}}, "outputs": {...}}``;
    a shape is ``None`` when even its rank is unknown. Raises :class:`StoreError` naming the
    signatures there are when ``name`` is not one of them.
    """
    import tensorflow as tf

    signatures = _serving_meta_graph(saved_model).signature_def
    if name not in signatures:
        available = sorted(k for k in signatures if not k.startswith("__"))
        raise StoreError(
            f"{saved_model}: the SavedModel has no signature {name!r} "
            f"(it has: {', '.join(available) or 'none'}); export one, e.g. a "
            "@tf.function(input_signature=[...]) method passed as signatures=, "
            "or name the one to serve with signature_name="
        )
    signature = signatures[name]

    def tensors(infos: Any) -> dict[str, Any]:
        return {
            key: {
                "dtype": tf.dtypes.as_dtype(info.dtype).name,
                "shape": None
                if info.tensor_shape.unknown_rank
                else [d.size if d.size >= 0 else None for d in info.tensor_shape.dim],
            }
            for key, info in sorted(infos.items())
        }

    return {
        "name": name,
        "inputs": tensors(signature.inputs),
        "outputs": tensors(signature.outputs),
    }


def _serving_meta_graph(saved_model: Path) -> Any:
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    binary = saved_model / "saved_model.pb"
    try:
        if binary.is_file():
            proto.ParseFromString(binary.read_bytes())
        else:
            text_format.Parse((saved_model / "saved_model.pbtxt").read_text(), proto)
    except Exception as exc:
        raise StoreError(
            f"{saved_model}: not a readable SavedModel", cause=f"{type(exc).__name__}: {exc}"
        ) from exc
    if not proto.meta_graphs:
        raise StoreError(f"{saved_model}: the SavedModel holds no MetaGraph")
    # TF1 exports may hold several MetaGraphs; serving reads the one tagged "serve".
    for graph in proto.meta_graphs:
        if "serve" in graph.meta_info_def.tags:
            return graph
    return proto.meta_graphs[0]
