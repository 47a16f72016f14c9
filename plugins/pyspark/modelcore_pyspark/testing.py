"""Small real Spark ML pipelines for tests and examples (imports pyspark when imported)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import SparkSession

# Label 1 when a + b > 1: separable, so a little regularization keeps probabilities inside (0, 1).
ROWS: list[tuple[float, float, float]] = [
    (0.0, 0.0, 0.0),
    (0.2, 0.1, 0.0),
    (0.4, 0.3, 0.0),
    (0.1, 0.5, 0.0),
    (1.0, 0.9, 1.0),
    (0.8, 0.7, 1.0),
    (0.6, 0.9, 1.0),
    (0.9, 0.4, 1.0),
]


def train_pipeline(
    spark: SparkSession, rows: Sequence[tuple[float, float, float]] = ROWS
) -> PipelineModel:
    """Fit ``VectorAssembler(a, b) -> features`` + ``LogisticRegression`` on (a, b, label) rows."""
    stages: list[Any] = [
        VectorAssembler(inputCols=["a", "b"], outputCol="features"),
        LogisticRegression(maxIter=20, regParam=0.05),
    ]
    return Pipeline(stages=stages).fit(spark.createDataFrame(list(rows), ["a", "b", "label"]))


def flipped(rows: Sequence[tuple[float, float, float]] = ROWS) -> list[tuple[float, float, float]]:
    """The same rows with the opposite labels: a pipeline trained on them answers the other way."""
    return [(a, b, 1.0 - label) for a, b, label in rows]


def transform_pairs(
    spark: SparkSession, model: Any, pairs: Sequence[Sequence[float]]
) -> list[dict[str, Any]]:
    """What ``model`` answers for (a, b) rows, straight from Spark, in row order."""
    frame = spark.createDataFrame(
        [(i, float(p[0]), float(p[1])) for i, p in enumerate(pairs)], ["i", "a", "b"]
    )
    return [
        {"prediction": r["prediction"], "probability": r["probability"].toArray().tolist()}
        for r in model.transform(frame).orderBy("i").collect()
    ]


def probability_of_one(spark: SparkSession, model: Any, inputs: list[Any]) -> list[float]:
    """A predict function in Clipper's shape ``func(spark, model, inputs)``: P(label 1) per (a, b)."""
    return [answer["probability"][1] for answer in transform_pairs(spark, model, inputs)]
