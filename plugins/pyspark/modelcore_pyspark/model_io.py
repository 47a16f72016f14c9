"""Writing a Spark ML model with its native ML writer, and finding and reading it back.

A version holds the model under ``spark_model/``, written by
``model.write().save(...)``. A bare folder (no manifest) is a native save
itself, or holds one under ``spark_model/``; its ``metadata/`` JSON names the
model's class. Only classes of ``pyspark.ml`` are loaded, at the top and in
every nested stage: class names come from files, and importing whatever a file
names is running its code.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from modelcore.errors import LoadError, PluginError, StoreError

MODEL_DIR = "spark_model"
ALLOWED_PREFIX = "pyspark.ml"
_JAVA_PREFIX = "org.apache.spark.ml"


def is_spark_ml(model: Any) -> bool:
    """True for an object of a ``pyspark.ml`` class with an ML writer (no import of pyspark)."""
    return _allowed(type(model).__module__) and callable(getattr(model, "write", None))


def class_name(model: Any) -> str:
    """The fully-qualified Python class name of ``model``."""
    return f"{type(model).__module__}.{type(model).__qualname__}"


def write_model(model: Any, directory: Path) -> dict[str, Any]:
    """Save a fitted Spark ML model or pipeline as ``directory/spark_model``; return its facts."""
    if not is_spark_ml(model):
        raise PluginError(
            "the pyspark backend saves fitted pyspark.ml models and pipelines (with a write() "
            f"method), not a {class_name(model)}"
        )
    from pyspark.ml import Transformer
    from pyspark.ml.util import MLWritable

    if not isinstance(model, Transformer):
        raise PluginError(
            f"{class_name(model)} is an estimator, not a fitted model: deploy what "
            f"{type(model).__name__}.fit(df) returns"
        )
    if not isinstance(model, MLWritable):
        raise PluginError(f"{class_name(model)} has no Spark ML writer; it cannot be saved")
    target = directory / MODEL_DIR
    try:
        # A file: URI, so a session whose default file system is HDFS still writes here.
        model.write().overwrite().save(_uri(target))
    except Exception as exc:
        raise StoreError(
            f"the Spark ML writer cannot save {class_name(model)}",
            cause=f"{type(exc).__name__}: {exc}",
        ) from exc
    # Hadoop's .crc side files duplicate what the manifest's sha256 sums already check.
    for crc in target.rglob(".*.crc"):
        crc.unlink()
    facts: dict[str, Any] = {"class": class_name(model), "path": MODEL_DIR, "uid": model.uid}
    stages = getattr(model, "stages", None)
    if isinstance(stages, list):
        facts["stages"] = [class_name(stage) for stage in stages]
    return facts


def locate(directory: Path, recorded: dict[str, Any] | None) -> tuple[Path, str]:
    """Where the native save lies in a version, and the Python class that loads it.

    ``recorded`` is what :func:`write_model` put in the manifest; without it
    (a bare folder) the class comes from the save's ``metadata/`` JSON.
    """
    if recorded:
        path = directory / str(recorded.get("path", MODEL_DIR))
        name = recorded.get("class")
        if not isinstance(name, str) or not path.is_dir():
            raise StoreError(f"{directory}: the manifest names no Spark ML model saved here")
        return path, name
    for path in (directory / MODEL_DIR, directory):
        if (path / "metadata").is_dir():
            return path, python_class_name(read_saved_class(path))
    raise StoreError(
        f"{directory}: not a Spark ML model save (no metadata/ folder here or in {MODEL_DIR}/)"
    )


def read_saved_class(path: Path) -> str:
    """The ``class`` field of a native save's ``metadata/part-*`` JSON."""
    name = _metadata_class(path / "metadata")
    if name is None:
        raise StoreError(f"{path}/metadata: no part-* file names the model's class")
    return name


def check_saved_classes(path: Path) -> None:
    """Refuse a save in which any stage (at any depth) names a class outside ``pyspark.ml``.

    PySpark's own readers import the stage classes that nested metadata
    names (and the JVM loads their Java counterparts), so the top-level
    class alone is not enough to check.
    """
    for metadata in sorted(path.rglob("metadata")):
        name = _metadata_class(metadata) if metadata.is_dir() else None
        if name is not None and not _allowed(python_class_name(name).rpartition(".")[0]):
            where = metadata.parent.relative_to(path).as_posix()
            raise LoadError(
                f"refusing to load {path}: the stage in {where or '.'} names the class "
                f"{name!r}; only classes of {ALLOWED_PREFIX} are loaded (class names come "
                "from the store, and importing them runs their code)"
            )


def _metadata_class(metadata: Path) -> str | None:
    for part in sorted(metadata.glob("part-*")):
        try:
            first = part.read_text(encoding="utf-8").splitlines()[0]
            name = json.loads(first)["class"]
        except (OSError, IndexError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{part}: unreadable Spark ML metadata", cause=f"{type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(name, str):
            return name
    return None


def python_class_name(saved: str) -> str:
    """The PySpark class for a class named in a save (``org.apache.spark.ml.X`` -> ``pyspark.ml.X``)."""
    if saved == _JAVA_PREFIX or saved.startswith(_JAVA_PREFIX + "."):
        return ALLOWED_PREFIX + saved[len(_JAVA_PREFIX) :]
    return saved


def read_model(cls: Any, path: Path) -> Any:
    """Read the save at ``path`` with ``cls.load`` (a class from :func:`import_model_class`)."""
    try:
        return cls.load(_uri(path))
    except Exception as exc:
        raise LoadError(
            f"{path}: {cls.__module__}.{cls.__qualname__}.load cannot read this Spark ML save",
            cause=f"{type(exc).__name__}: {exc}",
        ) from exc


def import_model_class(name: str) -> Any:
    """The class called ``name``, refused unless it is a readable class of ``pyspark.ml``."""
    module_name, _, attr = name.rpartition(".")
    if not module_name or not _allowed(module_name):
        raise LoadError(
            f"refusing to load the Spark model class {name!r}: only classes of {ALLOWED_PREFIX} "
            "are loaded (the class name comes from the store, and importing it runs its code)"
        )
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise LoadError(
            f"this pyspark has no class {name!r} (the model may come from another Spark version)",
            cause=f"{type(exc).__name__}: {exc}",
        ) from exc
    from pyspark.ml.util import MLReadable

    if not isinstance(cls, type) or not issubclass(cls, MLReadable):
        raise LoadError(f"{name} is not a Spark ML class that can read a save")
    return cls


def _allowed(module: str) -> bool:
    return module == ALLOWED_PREFIX or module.startswith(ALLOWED_PREFIX + ".")


def _uri(path: Path) -> str:
    # Hadoop parses "file://" + an absolute path itself (spaces included); as_uri()'s %-escapes it would not undo.
    return "file://" + str(path.resolve())
