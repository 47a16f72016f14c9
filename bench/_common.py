"""Shared pieces of the HTTP benchmarks: servers as subprocesses, wrk as the load generator.

The load always comes from a separate process (wrk, from Debian's packages:
``apt-get install wrk``) on 127.0.0.1, and every table reports ratios against a
baseline measured in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import modelcore

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine_line(name: str) -> str:
    versions = []
    for dist in ("aiohttp", "numpy", "orjson", "uvloop", "torch"):
        try:
            import importlib.metadata as md

            versions.append(f"{dist} {md.version(dist)}")
        except Exception:
            pass
    return (
        f"# {name}  Python {platform.python_version()}  modelcore {modelcore.__version__}  "
        f"{os.cpu_count()} cores  {', '.join(versions)}"
    )


class Server:
    """A server process on 127.0.0.1, stopped (SIGTERM) on exit."""

    def __init__(
        self,
        cmd: list[str],
        port: int,
        ready_path: str = "/v2/health/ready",
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[:4]} exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.base + ready_path, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{cmd[:4]} never became ready")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def modelcore_server(spec_text: str, workdir: Path, *extra: str) -> Server:
    port = free_port()
    spec = workdir / f"spec-{port}.yaml"
    spec.write_text(spec_text.replace("PORT", str(port)))
    return Server(
        [sys.executable, "-m", "modelcore", "--log-level", "warning", "serve", str(spec), *extra],
        port,
    )


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, body: bytes, connections: int, seconds: float = 5.0, threads: int = 1) -> Load:
    """Run wrk against ``url`` with a POST of ``body``; parse requests/s and latency."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(body.decode())}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            "done = function(summary, latency, requests)\n"
            '  io.write(string.format("P50 %f\\nP99 %f\\nNON2XX %d\\n", latency:percentile(50), '
            "latency:percentile(99), summary.errors.status))\n"
            "end\n"
        )
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{min(threads, connections)}",
                f"-c{connections}",
                f"-d{seconds:g}s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = float(re.search(r"P50 ([\d.]+)", out).group(1)) / 1000.0  # type: ignore[union-attr]
    p99 = float(re.search(r"P99 ([\d.]+)", out).group(1)) / 1000.0  # type: ignore[union-attr]
    non2xx = int(re.search(r"NON2XX (\d+)", out).group(1))  # type: ignore[union-attr]
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = non2xx + (sum(int(x) for x in socket_errors.groups()) if socket_errors else 0)
    return Load(rps, p50, p99, errors)


def median_run(loads: list[Load]) -> Load:
    """The run with the median requests/s (its latencies come with it)."""
    return sorted(loads, key=lambda load: load.rps)[len(loads) // 2]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
