"""Tensors of the Open Inference Protocol (KServe V2): JSON and the binary tensor extension.

An infer request carries named tensors; the rows of their leading dimension
are the list of inputs a deployed function receives (one tensor: each row is
an array; several: each row is a dict of name -> array). The function's list
of outputs is stacked back into tensors. Binary tensor data follow a JSON
header whose length the ``Inference-Header-Content-Length`` header gives;
``BYTES`` elements are then 4-byte little-endian lengths, each followed by
its bytes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelcore import _json
from modelcore.errors import BadRequest, PredictionError
from modelcore.server.clipper import decode_output

HEADER = "Inference-Header-Content-Length"

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
DATATYPES = {dtype: name for name, dtype in DTYPES.items()}
MAX_DIMS = 32


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    array: np.ndarray


@dataclass
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: list[dict[str, Any]] | None
    binary_output: bool


def datatype_of(array: np.ndarray) -> str:
    if array.dtype.kind in "OUS":
        return "BYTES"
    name = DATATYPES.get(array.dtype)
    if name is None:
        raise PredictionError(
            f"outputs of dtype {array.dtype} have no Open Inference Protocol datatype"
        )
    return name


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """An infer request from a JSON body, or a JSON header plus binary tensor data."""
    raw = body
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise BadRequest(f"{HEADER} must be an integer, got {header_length!r}") from None
        if not 0 < size <= len(body):
            raise BadRequest(f"{HEADER} is {size}, but the body has {len(body)} bytes")
        raw, binary = body[:size], memoryview(body)[size:]
    else:
        binary = memoryview(b"")
    try:
        data = _json.loads(raw)
    except (_json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest('an infer request is a JSON object with an "inputs" array')
    raw_inputs = data.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest('"inputs" must be a non-empty array of tensors')
    offset = 0
    tensors = []
    for i, spec in enumerate(raw_inputs):
        tensor, used = _tensor(spec, i, binary[offset:])
        offset += used
        tensors.append(tensor)
    if offset != len(binary):
        raise BadRequest(f"{len(binary) - offset} bytes of binary data belong to no input")
    params = data.get("parameters") or {}
    outputs = data.get("outputs")
    if outputs is not None and (
        not isinstance(outputs, list)
        or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs)
    ):
        raise BadRequest('"outputs" must be an array of objects with a "name"')
    for spec in outputs or []:
        if not isinstance(spec.get("parameters", {}), dict):
            raise BadRequest(f"output {spec['name']!r}: parameters must be an object")
    if not isinstance(params, dict):
        raise BadRequest('"parameters" must be an object')

    request_id = data.get("id")
    return InferRequest(
        id=str(request_id) if request_id is not None else None,
        inputs=tensors,
        outputs=outputs,
        binary_output=bool(isinstance(params, dict) and params.get("binary_data_output")),
    )


def _tensor(spec: Any, index: int, binary: memoryview) -> tuple[Tensor, int]:
    where = f"inputs[{index}]"
    if not isinstance(spec, dict):
        raise BadRequest(f"{where} must be an object with name, shape, datatype and data")
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name must be a non-empty string")
    where = f"input {name!r}"
    if not isinstance(datatype, str) or (datatype != "BYTES" and datatype not in DTYPES):
        raise BadRequest(
            f"{where}: unknown datatype {datatype!r} (known: BYTES, {', '.join(DTYPES)})"
        )
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= MAX_DIMS
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise BadRequest(f"{where}: shape must be a list of 1 to {MAX_DIMS} non-negative integers")
    count = math.prod(shape)
    params = spec.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if type(size) is not int or size < 0 or size > len(binary):
            raise BadRequest(f"{where}: binary_data_size {size!r} does not fit the binary data")
        chunk = binary[:size]
        array = _from_binary(chunk, datatype, count, where)
        used = size
    else:
        if "data" not in spec:
            raise BadRequest(f"{where}: no data (and no binary_data_size)")
        array = _from_json(spec["data"], datatype, count, where)
        used = 0
    try:
        array = array.reshape(shape)
    except ValueError:
        raise BadRequest(f"{where}: {array.size} elements do not fit shape {shape}") from None
    return Tensor(name, datatype, shape, array), used


def _from_json(data: Any, datatype: str, count: int, where: str) -> np.ndarray:
    flat = _flatten(data, where)
    if len(flat) != count:
        raise BadRequest(f"{where}: {len(flat)} elements for a shape of {count}")
    if datatype == "BYTES":
        if not all(isinstance(x, str) for x in flat):
            raise BadRequest(f"{where}: BYTES data must be strings")
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out
    if datatype == "BOOL":
        if not all(isinstance(x, bool) for x in flat):
            raise BadRequest(f"{where}: BOOL data must be true or false")
    elif not all(type(x) in (int, float) for x in flat):
        raise BadRequest(f"{where}: {datatype} data must be numbers")
    elif datatype.startswith(("INT", "UINT")) and not all(type(x) is int for x in flat):
        raise BadRequest(f"{where}: {datatype} data must be integers")
    try:
        return np.array(flat, dtype=DTYPES[datatype])
    except (OverflowError, ValueError) as exc:
        raise BadRequest(f"{where}: data do not fit {datatype}: {exc}") from None


def _flatten(data: Any, where: str, depth: int = 0) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if depth > MAX_DIMS:
        raise BadRequest(f"{where}: data nested deeper than {MAX_DIMS} levels")
    if all(not isinstance(x, list) for x in data):
        return data
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item, where, depth + 1))
    return out


def _from_binary(chunk: memoryview, datatype: str, count: int, where: str) -> np.ndarray:
    if datatype != "BYTES":
        dtype = DTYPES[datatype]
        if len(chunk) != count * dtype.itemsize:
            raise BadRequest(
                f"{where}: {len(chunk)} bytes of binary data for {count} {datatype} elements "
                f"({count * dtype.itemsize} expected)"
            )
        return np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).astype(dtype)  # a writable copy
    items: list[bytes] = []
    pos = 0
    while pos < len(chunk):
        if pos + 4 > len(chunk):
            raise BadRequest(f"{where}: truncated BYTES element length")
        (length,) = struct.unpack_from("<I", chunk, pos)
        pos += 4
        if pos + length > len(chunk):
            raise BadRequest(f"{where}: a BYTES element runs past the binary data")
        items.append(bytes(chunk[pos : pos + length]))
        pos += length
    if len(items) != count:
        raise BadRequest(f"{where}: {len(items)} BYTES elements for a shape of {count}")
    out = np.empty(count, dtype=object)
    out[:] = items
    return out


def rows(tensors: list[Tensor], input_type: str) -> list[Any]:
    """The list of inputs the function gets: the rows of the leading dimension."""
    counts = {t.shape[0] for t in tensors}
    if len(counts) != 1:
        raise BadRequest("every input's leading dimension (its number of rows) must be the same")
    n = counts.pop()
    if n == 0:
        raise BadRequest("the inputs have no rows")
    converted = [_for_input_type(t, input_type) for t in tensors]
    if len(converted) == 1:
        return [converted[0][i] for i in range(n)]
    return [{t.name: arr[i] for t, arr in zip(tensors, converted, strict=True)} for i in range(n)]


_NUMERIC = {"doubles": np.float64, "floats": np.float32, "integers": np.int64}


def _for_input_type(tensor: Tensor, input_type: str) -> Any:
    array = tensor.array
    if tensor.datatype == "BYTES":
        values = array.reshape(array.shape[0], -1)
        if values.shape[1] != 1:
            return array  # several strings per row: the rows stay arrays of strings
        flat = values[:, 0]
        if input_type == "strings":
            return [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in flat]
        if input_type == "bytes":
            return [x.encode() if isinstance(x, str) else x for x in flat]
        return list(flat)
    dtype = _NUMERIC.get(input_type)
    return array.astype(dtype, copy=False) if dtype is not None else array


def output_tensors(outputs: list[Any]) -> list[tuple[str, np.ndarray]]:
    """Stack the function's outputs (one per row) into named tensors."""
    decoded = [decode_output(o) for o in outputs]
    if decoded and all(isinstance(o, dict) for o in decoded):
        names = list(decoded[0])
        return [(name, _stack([o.get(name) for o in decoded], name)) for name in names]
    return [("output0", _stack(decoded, "output0"))]


def _stack(values: list[Any], name: str) -> np.ndarray:
    if all(isinstance(v, (str, bytes)) for v in values):
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    try:
        array = np.asarray(values)
    except ValueError as exc:
        raise PredictionError(
            f"output {name!r}: rows of different shapes cannot form a tensor"
        ) from exc
    if array.dtype == object:
        raise PredictionError(f"output {name!r}: values of mixed types cannot form a tensor")
    return array


def encode_response(
    model: str, version: int, request: InferRequest, tensors: list[tuple[str, np.ndarray]]
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary data follow it."""
    wanted: dict[str, bool] = {}
    if request.outputs is not None:
        names = {name for name, _ in tensors}
        for spec in request.outputs:
            if spec["name"] not in names:
                raise BadRequest(
                    f"unknown output {spec['name']!r} (outputs: {', '.join(sorted(names))})"
                )
            params = spec.get("parameters") or {}
            wanted[spec["name"]] = bool(params.get("binary_data", request.binary_output))
    else:
        wanted = {name: request.binary_output for name, _ in tensors}
    entries = []
    chunks: list[bytes] = []
    for name, array in tensors:
        if name not in wanted:
            continue
        datatype = datatype_of(array)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if wanted[name]:
            data = _to_binary(array, datatype)
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            entry["data"] = _to_json(array, datatype)
        entries.append(entry)
    body: dict[str, Any] = {"model_name": model, "model_version": str(version), "outputs": entries}
    if request.id is not None:
        body["id"] = request.id
    header = _json.dumps(body)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)


def _to_json(array: np.ndarray, datatype: str) -> list[Any]:
    flat = array.reshape(-1)
    if datatype == "BYTES":
        return [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in flat]
    return flat.tolist()


def _to_binary(array: np.ndarray, datatype: str) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    parts = []
    for x in array.reshape(-1):
        data = x if isinstance(x, bytes) else str(x).encode()
        parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)
