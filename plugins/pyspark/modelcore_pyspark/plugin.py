"""The ``pyspark`` backend: Spark ML models and pipelines served from one long-lived SparkSession.

A version holds ``spark_model/`` (the model's native ML writer output) and,
when deployed with one, ``func.pkl``: the function is called as
``func(spark, model, inputs)``. The first Spark model a process loads starts
and warms the shared session (see :mod:`modelcore_pyspark.session`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelcore.closure import load_function, save_function
from modelcore.errors import StoreError
from modelcore.hookspecs import hookimpl
from modelcore.manifest import Manifest
from modelcore.types import BackendInfo, SaveResult
from modelcore_pyspark.model import SparkModel, check_device
from modelcore_pyspark.model_io import (
    check_saved_classes,
    import_model_class,
    is_spark_ml,
    locate,
    read_model,
    write_model,
)
from modelcore_pyspark.session import get_spark

BACKEND = "pyspark"
FORMAT = "spark-ml"
METADATA_KEY = "pyspark"


@hookimpl
def modelcore_backends() -> list[BackendInfo]:
    return [BackendInfo(BACKEND, "Spark ML models and pipelines (PySpark)", ("pyspark",))]


@hookimpl
def modelcore_claim(model: Any) -> str | None:
    if sys.modules.get("pyspark") is not None and is_spark_ml(model):
        return BACKEND
    return None


@hookimpl
def modelcore_save(
    backend: str,
    directory: Path,
    model: Any,
    func: Callable[..., Any] | None,
    options: dict[str, Any],
) -> SaveResult | None:
    if backend != BACKEND:
        return None
    if model is None:
        raise StoreError("the pyspark backend needs a fitted pyspark.ml model or PipelineModel")
    facts = write_model(model, directory)
    if func is not None:
        save_function(func, directory)
    return SaveResult(format=FORMAT, metadata={METADATA_KEY: facts})


@hookimpl
def modelcore_load(
    backend: str, directory: Path, manifest: Manifest | None, device: str
) -> SparkModel | None:
    if backend != BACKEND:
        return None
    check_device(device)
    recorded = manifest.metadata.get(METADATA_KEY) if manifest is not None else None
    path, class_name = locate(directory, recorded if isinstance(recorded, dict) else None)
    # A bare folder (no manifest) is the framework's own format: no function is read from it.
    has_function = manifest is not None and manifest.has_function
    func = load_function(directory, manifest) if has_function else None
    # Class names come from files: both checks refuse before any JVM starts.
    cls = import_model_class(class_name)
    check_saved_classes(path)
    spark = get_spark()  # the first Spark model starts (and warms) the shared session here
    model = read_model(cls, path)
    return SparkModel(path=path, class_name=class_name, spark=spark, model=model, func=func)


@hookimpl
def modelcore_predict(backend: str, model: Any, inputs: list[Any]) -> list[Any] | None:
    if backend != BACKEND:
        return None
    return model.predict(inputs)


@hookimpl
def modelcore_place(backend: str, model: Any, device: str) -> Any:
    if backend != BACKEND:
        return None
    check_device(device)
    return model


@hookimpl
def modelcore_unload(backend: str, model: Any) -> bool | None:
    if backend != BACKEND:
        return None
    model.unload()
    return True
