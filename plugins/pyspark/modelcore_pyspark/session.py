"""The one long-lived SparkSession of a process, shared by every Spark model loaded in it.

Starting Spark launches a JVM and takes seconds, so it happens once per server
process (or isolated worker), when the first Spark model loads, and the
session is warmed up before that load returns: a request never pays for it.
The session lives until the process exits or :func:`stop_spark` is called.
``pyspark`` is imported inside these functions only.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from modelcore.errors import LoadError

log = logging.getLogger(__name__)

CONF_ENV = "MODELCORE_SPARK_CONF"
"""Extra Spark settings for the session modelcore starts: ``key=value`` pairs, comma-separated."""

LOOPBACK = "127.0.0.1"

# Small and local: a serving process runs tiny jobs (one batch of rows), and
# nothing may listen beyond the loopback interface.
DEFAULT_CONF: dict[str, str] = {
    "spark.master": "local[2]",
    "spark.app.name": "modelcore",
    "spark.driver.memory": "512m",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.driver.host": LOOPBACK,
    "spark.driver.bindAddress": LOOPBACK,
}

_lock = threading.Lock()
_session: Any = None
_owned = False  # True when modelcore started the session (and so may stop it)


def get_spark() -> Any:
    """The process's SparkSession: started and warmed up on the first call, then shared.

    A session that already exists in the process (the user's own) is used as
    it is. Otherwise one is started with :data:`DEFAULT_CONF`, overridden by
    ``MODELCORE_SPARK_CONF``. Thread-safe: concurrent first calls start one
    session.
    """
    global _session, _owned
    with _lock:
        if _session is not None and is_alive(_session):
            return _session
        session = _existing_session()
        owned = session is None
        if session is None:
            session = _start_session()
        _warm_up(session)
        _session, _owned = session, owned
        return session


def spark_started() -> bool:
    """Whether this process holds a live session for modelcore (starts nothing)."""
    session = _session
    return session is not None and is_alive(session)


def stop_spark() -> None:
    """Stop the session modelcore started (a session adopted from the user is only forgotten).

    Loaded Spark models stop working; load them again to serve them. The next
    :func:`get_spark` starts a new session.
    """
    global _session, _owned
    with _lock:
        session, owned = _session, _owned
        _session, _owned = None, False
        if session is not None and owned and is_alive(session):
            log.info("stopping the SparkSession")
            session.stop()


def is_alive(session: Any) -> bool:
    """Whether ``session``'s SparkContext is still running (stopped ones lose their JVM peer)."""
    context = getattr(session, "_sc", None)
    return context is not None and getattr(context, "_jsc", None) is not None


def session_conf(env: dict[str, str] | None = None) -> dict[str, str]:
    """The settings a new session starts with: the defaults, then ``MODELCORE_SPARK_CONF``."""
    conf = dict(DEFAULT_CONF)
    raw = (env if env is not None else os.environ).get(CONF_ENV, "")
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LoadError(
                f"{CONF_ENV}: expected key=value pairs separated by commas, got {item!r}"
            )
        conf[key.strip()] = value.strip()
    return conf


def _existing_session() -> Any:
    """A classic (non-Connect) session the process already runs, or ``None``."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is None and SparkContext._active_spark_context is not None:
        # Active sessions are per JVM thread; the default one is visible from any thread.
        session = SparkSession.builder.getOrCreate()
    if session is not None and not is_alive(session):
        raise LoadError(
            "the process's active SparkSession is a Spark Connect session; modelcore-pyspark "
            "serves pyspark.ml models in a classic (local JVM) session"
        )
    if session is not None:
        log.info("using the SparkSession already running in this process")
    return session


def _start_session() -> Any:
    from pyspark.sql import SparkSession

    # Python workers (for the user's UDFs) must run this interpreter, not whatever
    # `python3` is on PATH; the JVM must not pick a non-loopback address for itself.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    conf = session_conf()
    log.info("starting a SparkSession (master %s)", conf.get("spark.master"))
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:
        raise LoadError(
            "cannot start a SparkSession (Spark needs a Java runtime: Java 17 or later "
            "for Spark 4, set JAVA_HOME)",
            cause=f"{type(exc).__name__}: {exc}",
        ) from exc


def _warm_up(session: Any) -> None:
    """Run a job and a local DataFrame round trip, so the first request finds Spark warm."""
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    try:
        session.range(1).count()
        schema = StructType(
            [
                StructField("row", LongType()),
                StructField("x", DoubleType()),
                StructField("features", VectorUDT()),
            ]
        )
        session.createDataFrame([(0, 0.0, Vectors.dense([0.0]))], schema).orderBy("row").collect()
    except Exception as exc:
        raise LoadError(
            "the SparkSession started but cannot run a job", cause=f"{type(exc).__name__}: {exc}"
        ) from exc
