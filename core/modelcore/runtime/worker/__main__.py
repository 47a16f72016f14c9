"""An isolated model worker: ``python -m modelcore.runtime.worker --fd N``.

It loads one model version through its backend (the plugins installed in
*this* environment) and answers requests on the inherited socket, one at a
time, until the server closes the socket or the server process dies.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

log = logging.getLogger("modelcore.worker")


def _die_with_parent() -> None:
    """Exit when the server dies, even by SIGKILL, even while a model call is stuck (no orphans).

    A closed socket already ends the request loop; this covers a worker busy in
    a model call. (PR_SET_PDEATHSIG would fire when the server *thread* that
    started the worker ends, so it cannot be used.)
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _error(exc: BaseException) -> dict[str, Any]:
    from modelcore.errors import ModelcoreError

    if isinstance(exc, ModelcoreError):
        return {
            "type": type(exc).__name__,
            "message": exc.message,
            "status": exc.status,
            "cause": exc.cause,
        }
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "status": None,
        "cause": traceback.format_exception_only(type(exc), exc)[-1].strip(),
    }


def serve(channel: Any) -> None:
    from modelcore.manifest import Manifest
    from modelcore.plugins import get_plugin_manager

    pm = get_plugin_manager()
    backend: Any = None
    model: Any = None
    while True:
        try:
            kind, rid, payload = channel.recv()
        except EOFError:
            return
        except Exception as exc:
            # A request this environment cannot unpickle: its id is inside, so exit and let
            # the server fail what was in flight and start a fresh worker.
            log.error("cannot read a request: %s: %s", type(exc).__name__, exc)
            sys.exit(70)
        try:
            if kind == "predict":
                result: Any = backend.predict(model, payload)
            elif kind == "load":
                manifest = Manifest.from_yaml(payload["manifest"]) if payload["manifest"] else None
                backend = pm.backend(payload["backend"])
                model = backend.load(Path(payload["directory"]), manifest, payload["device"])
                model = backend.place(model, payload["device"])
                result = {"pid": os.getpid(), "python": sys.version.split()[0]}
            elif kind == "unload":
                result = backend.unload(model) if backend is not None else True
                model = None
            elif kind == "ping":
                result = os.getpid()
            elif kind == "exit":
                channel.send(("ok", rid, None))
                return
            else:
                raise ValueError(f"unknown request {kind!r}")
        except BaseException as exc:  # report everything; the server decides
            channel.send(("error", rid, _error(exc)))
            continue
        try:
            channel.send(("ok", rid, result))
        except Exception as exc:  # an answer that cannot be pickled
            channel.send(
                (
                    "error",
                    rid,
                    _error(
                        TypeError(
                            f"the model's answer cannot be sent back: {type(exc).__name__}: {exc}"
                        )
                    ),
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="modelcore-worker")
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args()
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops its workers itself
    logging.basicConfig(
        level=logging.WARNING, format="worker %(process)d %(levelname)s: %(message)s"
    )
    from modelcore.runtime.worker.protocol import Channel

    sock = socket.socket(fileno=args.fd)
    channel = Channel(sock)
    try:
        serve(channel)
    finally:
        channel.close()


if __name__ == "__main__":
    main()
