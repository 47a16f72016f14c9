"""How fast a published version starts answering, and whether any request fails meanwhile.

    .venv/bin/python bench/reload.py [--swaps 20] [--poll-interval 1.0] [--no-s3]

For a local store (watched with inotify) and an S3 store (moto on 127.0.0.1,
polled), a real ``modelcore serve`` process answers a steady load from four
clients while the benchmark publishes ``--swaps`` new versions, one after the
other. For each it measures the time from the end of the publish to the first
answer from the new version. Baselines measured in the same run: a request's
round trip, and the time to load one version in-process.
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
from modelcore.plugins import get_plugin_manager
from modelcore.store import ModelStore


def const(k: int):
    return lambda xs: [k for _ in xs]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError("the server exited")
            try:
                async with session.get(f"{base}/v2/health/ready") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the server never became ready")


async def run_case(label: str, store: ModelStore, spec_extra: str, swaps: int) -> dict[str, object]:
    modelcore.deploy_python_closure(store, "m", const(1))
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(
            f"store: {store.url}\n{spec_extra}\nserver: {{port: {port}}}\n"
            "apis:\n  - {name: m, model: m, threads: 4}\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelcore", "--log-level", "warning", "serve", str(spec)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(base, proc)
            return await measure(label, store, base, swaps)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


async def measure(label: str, store: ModelStore, base: str, swaps: int) -> dict[str, object]:
    stop = asyncio.Event()
    counts = {"ok": 0, "failed": 0}
    url = f"{base}/m/predict"
    body = json.dumps({"input": [1.0]})
    async with aiohttp.ClientSession() as session:

        async def post() -> tuple[int, object]:
            async with session.post(url, data=body) as resp:
                data = await resp.json()
                return resp.status, data.get("output")

        async def load() -> None:
            while not stop.is_set():
                try:
                    status, _ = await post()
                    counts["ok" if status == 200 else "failed"] += 1
                except aiohttp.ClientError:
                    counts["failed"] += 1

        rtts = []
        for _ in range(200):
            started = time.perf_counter()
            await post()
            rtts.append(time.perf_counter() - started)
        workers = [asyncio.ensure_future(load()) for _ in range(4)]
        latencies = []
        try:
            for k in range(2, swaps + 2):
                await asyncio.to_thread(modelcore.deploy_python_closure, store, "m", const(k))
                published = time.perf_counter()
                while (await post())[1] != k:
                    if time.perf_counter() - published > 120:
                        raise RuntimeError(f"v{k} never answered")
                latencies.append(time.perf_counter() - published)
        finally:
            stop.set()
            await asyncio.gather(*workers)
    return {
        "case": label,
        "median_s": statistics.median(latencies),
        "max_s": max(latencies),
        "rtt_s": statistics.median(rtts),
        "requests": counts["ok"] + counts["failed"],
        "failed": counts["failed"],
    }


def load_baseline(store: ModelStore) -> float:
    """Seconds to load one version in-process (download for a remote store, manifest, unpickle)."""
    pm = get_plugin_manager()
    version = store.latest_version("m")
    assert version is not None
    times = []
    for _ in range(10):
        started = time.perf_counter()
        if not store.is_local:
            store.invalidate()
            snapshot = store.snapshot("m")
            directory = store.local_dir("m", version, snapshot[version])
        else:
            directory = store.local_dir("m", version)
        manifest = store.read_manifest("m", version)
        backend = pm.backend(manifest.backend)
        backend.place(backend.load(directory, manifest, "cpu"), "cpu")
        times.append(time.perf_counter() - started)
        if not store.is_local:
            import shutil

            shutil.rmtree(directory)  # cold every time: the download is part of the cost
            store.disk_cache.evict()
    return statistics.median(times)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--no-s3", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MODELCORE_CACHE", str(Path(tmp) / "cache"))
        local = ModelStore(Path(tmp) / "models")
        row = await run_case("local (watched)", local, "", args.swaps)
        row["load_s"], row["target_s"] = load_baseline(local), 1.0
        rows.append(row)
        if not args.no_s3:
            from modelcore.testing.s3 import start_s3_server

            server = start_s3_server()
            try:
                remote = ModelStore(f"s3://{server.new_bucket()}/models", server.storage_options)
                extra = (
                    f"storage_options: {json.dumps(server.storage_options)}\n"
                    f"poll_interval: {args.poll_interval}"
                )
                label = f"s3 (polled every {args.poll_interval:g}s)"
                row = await run_case(label, remote, extra, args.swaps)
                row["load_s"] = load_baseline(remote)
                row["target_s"] = args.poll_interval + float(row["load_s"])
                rows.append(row)
            finally:
                server.process.terminate()
    print(
        f"# bench/reload.py  {platform.python_version()}  modelcore {modelcore.__version__}  "
        f"{os.cpu_count()} cores  swaps={args.swaps}"
    )
    print("baselines, same run: a request's round trip; one version's cold load in-process")
    print("(download included for S3). target: local 1 s; S3 one poll interval + load.")
    print()
    print(
        "| store | round trip | load | swap median | swap max | median / target | max / target | requests | failed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        median, worst, target = float(row["median_s"]), float(row["max_s"]), float(row["target_s"])
        print(
            f"| {row['case']} | {float(row['rtt_s']) * 1e3:.2f} ms | {float(row['load_s']) * 1e3:.1f} ms | "
            f"{median * 1e3:.0f} ms | {worst * 1e3:.0f} ms | {median / target:.2f} | {worst / target:.2f} | "
            f"{row['requests']} | {row['failed']} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
