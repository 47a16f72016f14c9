"""Predicting without a user function: the inputs become one batch for the serving signature.

Used for versions deployed with ``func=None`` and for bare SavedModel folders.

* One signature input: each request input is one row (an array, a number, a string).
* Several inputs: each request input is an object ``{input name: value}`` (or a
  JSON string of one, so that ``input_type: strings`` reaches them over HTTP).
* The rows are stacked into one batch when the signature has a batch dimension
  (``(None, 3)`` takes rows of shape ``(3,)``); a signature without one
  (``(3,)`` itself) is run once per input.
* One output per input: the output's row as a list for a one-output signature,
  else a dict ``{output name: row as a list}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelcore_tensorflow.convert import PayloadError, jsonable, shape_text
from modelcore_tensorflow.model import TensorFlowModel


def default_predict(model: TensorFlowModel, inputs: list[Any]) -> list[Any]:
    """One JSON-ready output per input, from the serving signature alone."""
    if not inputs:
        return []
    columns = _columns(model, inputs)
    if _fits(model, columns, batched=True):
        return _split(model.run(_stack(columns)), len(inputs))
    if _fits(model, columns, batched=False):
        return [
            _row(model.run({name: values[i] for name, values in columns.items()}), None)
            for i in range(len(inputs))
        ]
    first = {name: np.shape(values[0]) for name, values in columns.items()}
    raise PayloadError(
        "inputs do not fit the signature: "
        + "; ".join(
            f"{name!r} takes {shape_text(model.inputs[name].shape)}, "
            f"got inputs of shape {shape_text(shape)}"
            for name, shape in first.items()
        )
    )


def _columns(model: TensorFlowModel, inputs: list[Any]) -> dict[str, list[Any]]:
    """The inputs as one list of values per signature input."""
    names = list(model.inputs)
    if len(names) == 1:
        name = names[0]
        # {"x": value} for a one-input signature is accepted as well as the bare value.
        return {name: [_unwrap(x, name) for x in inputs]}
    rows = [_as_mapping(x, names, i) for i, x in enumerate(inputs)]
    return {name: [row[name] for row in rows] for name in names}


def _unwrap(value: Any, name: str) -> Any:
    if isinstance(value, Mapping) and set(value) == {name}:
        return value[name]
    return value


def _as_mapping(value: Any, names: list[str], index: int) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if not isinstance(value, Mapping):
        raise PayloadError(
            f"input {index}: the signature takes several inputs "
            f"({', '.join(repr(n) for n in names)}); give each input as an object "
            "{name: value}"
        )
    missing = [n for n in names if n not in value]
    unknown = sorted(set(value) - set(names))
    if missing or unknown:
        raise PayloadError(
            f"input {index}: missing {missing or 'nothing'}, unknown {unknown or 'nothing'} "
            f"(the signature takes {names})"
        )
    return value


def _fits(model: TensorFlowModel, columns: dict[str, list[Any]], *, batched: bool) -> bool:
    for name, values in columns.items():
        row = np.shape(values[0])
        shape = (len(values), *row) if batched else row
        if not model.inputs[name].shape.is_compatible_with(shape):
            return False
    return True


def _stack(columns: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    batch = {}
    for name, values in columns.items():
        try:
            batch[name] = np.stack([np.asarray(v) for v in values])
        except ValueError as exc:
            raise PayloadError(
                f"input {name!r}: inputs of different shapes cannot form one batch",
                cause=str(exc),
            ) from exc
    return batch


def _split(outputs: dict[str, np.ndarray], n: int) -> list[Any]:
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != n:
            raise ValueError(
                f"output {name!r} has shape {array.shape}, which is not one row per input "
                f"({n} inputs); deploy a predict function that says how to split it"
            )
    return [_row(outputs, i) for i in range(n)]


def _row(outputs: dict[str, np.ndarray], index: int | None) -> Any:
    rows = {name: jsonable(a if index is None else a[index]) for name, a in outputs.items()}
    return next(iter(rows.values())) if len(rows) == 1 else rows
