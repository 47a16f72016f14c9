"""The server's side of isolated workers: processes, their requests, crashes, hangs and restarts.

A :class:`WorkerPool` runs ``replicas`` processes for one model version and
sends each request to the least busy live one. A worker that exits fails its
requests at once with a 503 and is restarted; one that does not answer within
the timeout is killed (which fails its requests the same way) and restarted.
Other models never notice.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from modelcore.errors import LoadError, ModelcoreError, ModelUnavailable, PredictionError
from modelcore.runtime.worker.protocol import Channel
from modelcore.types import BackendInfo

log = logging.getLogger(__name__)


class WorkerCrashed(ModelUnavailable):
    """The worker running the model exited or was killed."""


class WorkerTimeout(ModelUnavailable):
    """The worker did not answer in time; it is killed and restarted."""


def _remote_error(name: str, version: int, info: dict[str, Any]) -> ModelcoreError:
    status = info.get("status")
    if status:
        return ModelcoreError(info["message"], cause=info.get("cause"), status=status)
    return PredictionError(
        f"model {name} v{version} raised {info['type']}: {info['message']}", cause=info["type"]
    )


class WorkerProcess:
    """One worker process and its connection."""

    def __init__(self, pool: WorkerPool, index: int):
        self.pool = pool
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: Channel | None = None
        self.pending: dict[int, Future[Any]] = {}
        self.lock = threading.Lock()
        self.alive = False
        self.stopping = False
        self.ids = itertools.count()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self.proc = subprocess.Popen(
                [self.pool.python, "-m", "modelcore.runtime.worker", "--fd", str(child.fileno())],
                pass_fds=[child.fileno()],
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        self.channel = Channel(parent)
        self.alive = True
        threading.Thread(
            target=self._read, name=f"worker-read-{self.pool.label}", daemon=True
        ).start()

    def request(self, kind: str, payload: Any, timeout: float | None) -> Any:
        future: Future[Any] = Future()
        with self.lock:
            if not self.alive or self.channel is None:
                raise WorkerCrashed(
                    f"the worker of {self.pool.label} is not running", cause="restarting"
                )
            rid = next(self.ids)
            self.pending[rid] = future
        try:
            self.channel.send((kind, rid, payload))
        except OSError as exc:
            with self.lock:
                self.pending.pop(rid, None)
            raise WorkerCrashed(f"the worker of {self.pool.label} is gone: {exc}") from exc
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            log.error(
                "worker %s of %s did not answer within %ss: killing it",
                self.pid,
                self.pool.label,
                timeout,
            )
            self.kill()
            raise WorkerTimeout(
                f"model {self.pool.label} did not answer within {timeout:g}s; its worker was "
                "restarted",
                cause="timeout",
            ) from None

    def _read(self) -> None:
        channel = self.channel
        assert channel is not None
        try:
            self._read_until_eof(channel)
        finally:
            self._died()

    def _read_until_eof(self, channel: Channel) -> None:
        while True:
            try:
                status, rid, payload = channel.recv()
            except (EOFError, OSError):
                return
            except Exception as exc:
                # A frame this server cannot unpickle (a type only the worker's environment
                # has): nothing maps it to its request, so the worker is restarted.
                log.error(
                    "worker %s of %s sent what cannot be read (%s: %s); restarting it",
                    self.pid,
                    self.pool.label,
                    type(exc).__name__,
                    exc,
                )
                self.kill()
                continue
            with self.lock:
                future = self.pending.pop(rid, None)
            if future is None:
                continue
            if status == "ok":
                future.set_result(payload)
            else:
                future.set_exception(_remote_error(self.pool.name, self.pool.version, payload))

    def _died(self) -> None:
        with self.lock:
            self.alive = False
            pending, self.pending = self.pending, {}
        code = self.proc.wait() if self.proc else None
        if self.channel is not None:
            self.channel.close()
        how = (
            f"exited with code {code}"
            if code is not None and code >= 0
            else f"was killed (signal {-code if code else '?'})"
        )
        for future in pending.values():
            if not future.done():
                future.set_exception(
                    WorkerCrashed(
                        f"the worker of {self.pool.label} {how} while answering",
                        cause="worker crashed",
                    )
                )
        if not self.stopping:
            log.error("worker %s of %s %s; restarting it", self.pid, self.pool.label, how)
            self.pool.restart(self)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    def stop(self, grace: float = 5.0) -> None:
        self.stopping = True
        if self.proc is None:
            return
        if self.alive:
            try:
                self.request("exit", None, timeout=grace)
            except ModelcoreError:
                pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()


class WorkerPool:
    """``replicas`` worker processes serving one model version."""

    def __init__(
        self,
        name: str,
        version: int,
        backend: str,
        python: str,
        replicas: int,
        timeout: float,
        load_request: dict[str, Any],
    ):
        self.name = name
        self.version = version
        self.label = f"{name} v{version}"
        self.backend = backend
        self.python = python
        self.timeout = timeout
        self.load_request = load_request
        self.workers = [WorkerProcess(self, i) for i in range(replicas)]
        self.restarts = 0
        self.closed = False
        self._rr = itertools.count()

    def start(self, load_timeout: float = 600.0) -> None:
        for worker in self.workers:
            worker.start()
        try:
            for worker in self.workers:
                worker.request("load", self.load_request, timeout=load_timeout)
        except ModelcoreError as exc:
            self.stop()
            raise LoadError(
                f"{self.label} failed to load in its worker: {exc.message}", cause=exc.cause
            ) from exc

    def restart(self, dead: WorkerProcess) -> None:
        if self.closed:
            return
        self.restarts += 1

        def again() -> None:
            replacement = WorkerProcess(self, dead.index)
            try:
                replacement.start()
                replacement.request("load", self.load_request, timeout=600.0)
            except Exception as exc:  # OSError from Popen too: never end restarts silently
                message = exc.message if isinstance(exc, ModelcoreError) else str(exc)
                log.error("restarting the worker of %s failed: %s", self.label, message)
                replacement.stopping = True
                replacement.kill()
                return
            if self.closed:
                replacement.stop()
                return
            self.workers[dead.index] = replacement
            log.info("worker of %s restarted (pid %s)", self.label, replacement.pid)

        threading.Thread(target=again, name=f"worker-restart-{self.label}", daemon=True).start()

    def predict(self, inputs: list[Any]) -> list[Any]:
        live = [w for w in self.workers if w.alive]
        if not live:
            raise WorkerCrashed(
                f"no worker of {self.label} is running (restarting)", cause="restarting"
            )
        start = next(self._rr)
        worker = min(
            (live[(start + i) % len(live)] for i in range(len(live))), key=lambda w: len(w.pending)
        )
        result: list[Any] = worker.request("predict", inputs, self.timeout)
        return result

    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.alive and w.pid is not None]

    def stop(self) -> None:
        self.closed = True
        for worker in self.workers:
            if worker.alive:
                try:
                    worker.request("unload", None, timeout=30)
                except ModelcoreError:
                    pass
        for worker in self.workers:
            worker.stop()


class WorkerBackend:
    """A backend-like object whose models live in worker processes."""

    def __init__(self, info: BackendInfo, python: str | None, replicas: int, timeout: float):
        self.info = info
        self.name = info.name
        self.plugin_name = f"{info.name} (isolated)"
        self.python = python or sys.executable
        self.replicas = replicas
        self.timeout = timeout

    def load(
        self, directory: Path, manifest: Any, device: str, *, name: str = "?", version: int = 0
    ) -> WorkerPool:
        request = {
            "backend": self.name,
            "directory": str(directory),
            "manifest": manifest.to_yaml() if manifest is not None else None,
            "device": device,
        }
        pool = WorkerPool(
            name, version, self.name, self.python, self.replicas, self.timeout, request
        )
        started = time.perf_counter()
        pool.start()
        log.info(
            "%s: %d worker(s) ready in %.2fs (%s)",
            pool.label,
            self.replicas,
            time.perf_counter() - started,
            self.python,
        )
        return pool

    def place(self, model: WorkerPool, device: str) -> WorkerPool:
        return model  # placed inside the worker at load

    def predict(self, model: WorkerPool, inputs: list[Any]) -> list[Any]:
        return model.predict(inputs)

    def unload(self, model: WorkerPool) -> bool:
        model.stop()
        return True
