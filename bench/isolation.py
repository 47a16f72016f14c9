"""What an isolated worker process costs per request, and what building its environment costs.

    .venv/bin/python bench/isolation.py [--requests 2000] [--seconds 5] [--no-env]

One ``modelcore serve`` process serves the same small numpy model twice: in
the server's threads (the baseline) and in a worker process. A client in this
process measures latency at concurrency 1 and throughput at concurrency 64 for
both, and prints the worker's figures as ratios against the in-process ones.
Then it builds a worker environment for one small package, cold and cached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

import modelcore


def small_model(xs):
    import numpy as np

    weights = np.linspace(-1, 1, 16)
    return [float(np.dot(weights, x)) for x in xs]


async def latency(session: aiohttp.ClientSession, url: str, body: bytes, n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        async with session.post(url, data=body) as resp:
            await resp.read()
            assert resp.status == 200
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def throughput(
    session: aiohttp.ClientSession, url: str, body: bytes, seconds: float, concurrency: int = 64
) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            async with session.post(url, data=body) as resp:
                await resp.read()
                assert resp.status == 200
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


async def serve_and_measure(store: Path, requests: int, seconds: float) -> dict[str, float]:
    modelcore.deploy_python_closure(store, "small", small_model)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = store / "spec.yaml"
    spec.write_text(
        f"store: {store}\nserver: {{port: {port}}}\nwatch: false\napis:\n"
        "  - {name: inproc, model: small, threads: 4}\n"
        "  - {name: worker, model: small, route: /worker/predict, isolation: process, replicas: 1, threads: 4}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelcore", "--log-level", "warning", "serve", str(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"input": [0.5] * 16}).encode()
    out: dict[str, float] = {}
    try:
        connector = aiohttp.TCPConnector(limit=128)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(600):
                try:
                    async with session.get(f"{base}/v2/health/ready") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            for api in ("inproc", "worker"):  # warm both paths first
                await latency(session, f"{base}/{api}/predict", body, 200)
            for api in ("inproc", "worker"):
                out[f"{api}_p50"] = await latency(session, f"{base}/{api}/predict", body, requests)
                out[f"{api}_rps"] = await throughput(
                    session, f"{base}/{api}/predict", body, seconds
                )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return out


def env_build_times() -> tuple[float, float]:
    from modelcore.runtime.worker.envs import EnvBuilder, install_source

    with tempfile.TemporaryDirectory() as tmp:
        builder = EnvBuilder(Path(tmp))
        sources = [install_source("modelcore"), install_source("modelcore-python")]
        started = time.perf_counter()
        builder.ensure(sources, ["inflection==0.5.1"], label="bench")
        cold = time.perf_counter() - started
        started = time.perf_counter()
        builder.ensure(sources, ["inflection==0.5.1"], label="bench")
        cached = time.perf_counter() - started
    return cold, cached


def worker_start_time() -> float:
    """Seconds from spawning a worker in the server's own environment to its first answer."""
    from modelcore.runtime.worker.pool import WorkerPool

    with tempfile.TemporaryDirectory() as tmp:
        modelcore.deploy_python_closure(tmp, "small", small_model)
        manifest = modelcore.ModelStore(tmp).read_manifest("small", 1)
        request = {
            "backend": "python_closure",
            "directory": f"{tmp}/small/1",
            "manifest": manifest.to_yaml(),
            "device": "cpu",
        }
        times = []
        for _ in range(5):
            pool = WorkerPool("small", 1, "python_closure", sys.executable, 1, 30.0, request)
            started = time.perf_counter()
            pool.start()
            times.append(time.perf_counter() - started)
            pool.stop()
        return statistics.median(times)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-env", action="store_true", help="skip the environment build timing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = await serve_and_measure(Path(tmp), args.requests, args.seconds)
    start_s = worker_start_time()
    print(
        f"# bench/isolation.py  Python {platform.python_version()}  modelcore {modelcore.__version__}  "
        f"{os.cpu_count()} cores"
    )
    print("baseline: the same model served in the server's threads, same server, same run")
    print()
    print("| serving | p50 latency, concurrency 1 | requests/s, concurrency 64 |")
    print("|---|---|---|")
    print(
        f"| in-process (baseline) | {figures['inproc_p50'] * 1e3:.3f} ms | {figures['inproc_rps']:.0f} |"
    )
    print(
        f"| worker process | {figures['worker_p50'] * 1e3:.3f} ms | {figures['worker_rps']:.0f} |"
    )
    added = (figures["worker_p50"] - figures["inproc_p50"]) * 1e3
    print(
        f"| worker / in-process | {figures['worker_p50'] / figures['inproc_p50']:.2f}x "
        f"(+{added:.3f} ms per request) | {figures['worker_rps'] / figures['inproc_rps']:.2f}x |"
    )
    print()
    print(f"worker start (spawn, import, load, first answer): {start_s * 1e3:.0f} ms")
    if not args.no_env:
        cold, cached = env_build_times()
        print(
            f"environment for one package: cold build {cold:.1f} s, cached {cached * 1e3:.1f} ms "
            f"({cold / max(cached, 1e-9):.0f}x)"
        )


if __name__ == "__main__":
    asyncio.run(main())
