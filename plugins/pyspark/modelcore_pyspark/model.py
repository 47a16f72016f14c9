"""The live model: a Spark ML model, the shared session it runs in, and the user's function."""

from __future__ import annotations

import gc
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcore.errors import LoadError, PredictionError
from modelcore_pyspark.default_predict import default_predict
from modelcore_pyspark.session import is_alive

PredictFunc = Callable[[Any, Any, list[Any]], list[Any]]


def check_device(device: str) -> None:
    """Spark ML runs on the JVM's CPUs: accept ``cpu`` and ``auto``, refuse a GPU."""
    if device in ("cpu", "auto"):
        return
    if re.fullmatch(r"cuda(:[0-9]+)?", device):
        raise LoadError(
            f"device {device!r}: Spark ML models run on the CPU in the local Spark JVM; "
            "serve them with device: cpu (or auto)"
        )
    raise LoadError(f"unknown device {device!r}; use cpu, auto, cuda or cuda:N")


@dataclass
class SparkModel:
    """What ``modelcore_load`` returns.

    ``spark`` is the process's shared session, fetched at load time, so a
    request never waits for a session to start. ``func(spark, model, inputs)``
    predicts; without one :func:`default_predict` does.
    """

    path: Path
    class_name: str
    spark: Any
    model: Any
    func: PredictFunc | None = None

    def predict(self, inputs: list[Any]) -> list[Any]:
        model, spark = self.model, self.spark
        if model is None:
            raise PredictionError(f"{self.path}: this Spark model was unloaded")
        if not is_alive(spark):
            raise PredictionError(
                f"{self.path}: the SparkSession this model was loaded in has stopped; "
                "reload the model"
            )
        if self.func is None:
            return default_predict(spark, model, inputs)
        return self.func(spark, model, inputs)

    def unload(self) -> None:
        """Drop the model (its JVM peer is released when collected); the session stays."""
        self.model = None
        self.func = None
        gc.collect()
