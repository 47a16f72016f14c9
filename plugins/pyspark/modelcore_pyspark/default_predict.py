"""The predict used without a user function: inputs -> DataFrame -> ``transform`` -> one row each.

Numeric vectors fill the model's feature vector column (or, for a pipeline
that starts with a ``VectorAssembler``, that assembler's input columns, one
number each); dicts (or strings holding a JSON object) give one column per
key. Each input answers ``{"prediction": p}``, plus ``"probability": [...]``
when the model outputs probabilities, in input order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from numbers import Number
from typing import Any

import numpy as np

from modelcore.errors import BadRequest, PredictionError

ROW = "__modelcore_row__"
PREDICTION = "prediction"
PROBABILITY = "probability"
FEATURES = "features"

Converter = Callable[[Any], Any]


def default_predict(spark: Any, model: Any, inputs: list[Any]) -> list[Any]:
    """Transform ``inputs`` with ``model``; answer ``prediction`` (and ``probability``) per input.

    An input that a stage of the model drops (``handleInvalid="skip"``)
    answers ``None``.
    """
    if not inputs:
        return []
    out = model.transform(build_frame(spark, model, inputs))
    columns = out.columns
    if PREDICTION not in columns or ROW not in columns:
        raise PredictionError(
            f"without a predict function the model's output needs a {PREDICTION!r} column "
            f"(this one has {', '.join(c for c in columns if c != ROW)}); "
            "deploy it with deploy_pyspark_model(..., func)"
        )
    wanted = [PREDICTION] + ([PROBABILITY] if PROBABILITY in columns else [])
    answers: list[Any] = [None] * len(inputs)
    # Spark keeps no row order promise across stages: the index column restores it.
    for row in out.select(ROW, *wanted).orderBy(ROW).collect():
        answers[row[ROW]] = {name: _plain(row[name]) for name in wanted}
    return answers


def build_frame(spark: Any, model: Any, inputs: list[Any]) -> Any:
    """A DataFrame with one row per input, numbered in the ``__modelcore_row__`` column."""
    records = [_record(x) for x in inputs]
    kinds = {isinstance(r, dict) for r in records}
    if kinds == {True}:
        return _dict_frame(spark, records)
    if kinds == {False}:
        return _vector_frame(spark, model, records)
    raise BadRequest("a batch mixes objects and vectors; send one kind of input")


def _record(value: Any) -> Any:
    from pyspark.ml.linalg import Vector

    if isinstance(value, dict) or isinstance(value, Vector):
        return value
    if isinstance(value, (str, bytes)):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise BadRequest(
                "without a predict function, a Spark model takes numeric vectors or JSON "
                "objects (one column per key), not a plain string"
            )
        return parsed
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"input is not a numeric vector: {exc}") from None
    if vector.ndim != 1:
        raise BadRequest(f"input must be a flat vector of numbers, got shape {list(vector.shape)}")
    return vector


def _vector_frame(spark: Any, model: Any, vectors: list[Any]) -> Any:
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    stage = _first_stage(model)
    if isinstance(stage, VectorAssembler):
        names = list(stage.getInputCols())
        for v in vectors:
            if len(v) != len(names):
                raise BadRequest(
                    f"the model's VectorAssembler reads {len(names)} columns "
                    f"({', '.join(names)}): send vectors of {len(names)} numbers, got {len(v)}"
                )
        schema = StructType(
            [StructField(ROW, LongType(), False)]
            + [StructField(n, DoubleType(), True) for n in names]
        )
        spread: list[tuple[Any, ...]] = [
            (i, *(float(x) for x in _array(v))) for i, v in enumerate(vectors)
        ]
        return spark.createDataFrame(spread, schema)
    schema = StructType(
        [StructField(ROW, LongType(), False), StructField(_vector_column(stage), VectorUDT())]
    )
    rows: list[tuple[Any, ...]] = [
        (i, Vectors.dense(v) if isinstance(v, np.ndarray) else v) for i, v in enumerate(vectors)
    ]
    return spark.createDataFrame(rows, schema)


def _dict_frame(spark: Any, records: list[dict[str, Any]]) -> Any:
    from pyspark.sql.types import LongType, StructField, StructType

    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    if ROW in names:
        raise BadRequest(f"{ROW!r} is reserved; rename that input key")
    fields = [StructField(ROW, LongType(), False)]
    converters: list[Converter] = []
    for name in names:
        sample = next((r[name] for r in records if r.get(name) is not None), None)
        spark_type, convert = _column_type(name, sample)
        fields.append(StructField(str(name), spark_type, True))
        converters.append(convert)
    rows = [
        (
            i,
            *(
                None if r.get(n) is None else c(r[n])
                for n, c in zip(names, converters, strict=True)
            ),
        )
        for i, r in enumerate(records)
    ]
    return spark.createDataFrame(rows, StructType(fields))


def _column_type(name: str, sample: Any) -> tuple[Any, Converter]:
    """The Spark type of a dict input's column, from its first value, and a converter to it."""
    from pyspark.ml.linalg import Vector, VectorUDT
    from pyspark.sql.types import BooleanType, DoubleType, StringType

    if sample is None or isinstance(sample, str):
        return StringType(), _typed(name, str, str)
    if isinstance(sample, (bool, np.bool_)):
        return BooleanType(), _typed(name, (bool, np.bool_), bool)
    if isinstance(sample, Number):
        # Every number becomes a double, so 1 and 1.5 in one column agree (ML stages want doubles).
        return DoubleType(), _typed(name, Number, float)
    if isinstance(sample, (Vector, list, tuple, np.ndarray)):
        return VectorUDT(), _to_vector(name)
    raise BadRequest(f"input key {name!r}: unsupported value {type(sample).__name__}")


def _typed(name: str, kinds: Any, cast: Converter) -> Converter:
    def convert(value: Any) -> Any:
        if not isinstance(value, kinds) or (cast is float and isinstance(value, (bool, np.bool_))):
            raise BadRequest(f"input key {name!r}: mixed value types ({type(value).__name__})")
        return cast(value)

    return convert


def _to_vector(name: str) -> Converter:
    def convert(value: Any) -> Any:
        from pyspark.ml.linalg import Vector, Vectors

        if isinstance(value, Vector):
            return value
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            array = None
        if array is None or array.ndim != 1:
            raise BadRequest(f"input key {name!r}: expected a flat list of numbers")
        return Vectors.dense(array)

    return convert


def _first_stage(model: Any) -> Any:
    """The first transformer that sees the input, inside (nested) pipelines."""
    stages = getattr(model, "stages", None)
    while isinstance(stages, list) and stages:
        model = stages[0]
        stages = getattr(model, "stages", None)
    return model


def _vector_column(stage: Any) -> str:
    """The column a stage reads its feature vector from (``features`` when it does not say)."""
    for getter in ("getFeaturesCol", "getInputCol"):
        method = getattr(stage, getter, None)
        if method is None:
            continue
        try:
            return str(method())
        except Exception:  # the param is unset on this stage (e.g. a multi-column one)
            continue
    return FEATURES


def _array(value: Any) -> Any:
    return value.toArray() if hasattr(value, "toArray") else value


def _plain(value: Any) -> Any:
    """A JSON-friendly value: Spark vectors and numpy values become lists and numbers."""
    if hasattr(value, "toArray"):
        return value.toArray().tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
