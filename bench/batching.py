"""Adaptive batching on a PyTorch MLP (256 -> 1024 -> 1024 -> 10, CPU, one torch thread).

    .venv/bin/python bench/batching.py [--seconds 10] [--slo-ms 100]

One row per request at 64 connections (wrk, a separate process), served by
modelcore with adaptive batching, against two baselines measured in the same
run: (a) a bare aiohttp handler that calls the model once per request, and
(b) the model's raw in-process rows/s at the batch size the batcher settled on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bare_server import build_model
from _common import Server, free_port, machine_line, modelcore_server, table, wrk

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one torch thread, in every process started here


def rows_per_second(batch: int, seconds: float = 2.0) -> float:
    import numpy as np

    model = build_model("mlp")
    xs = [np.random.default_rng(0).standard_normal(256) for _ in range(batch)]
    model(xs)
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        model(xs)
        done += batch
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--slo-ms", type=float, default=100.0)
    args = parser.parse_args()
    import torch

    from modelcore_pytorch import deploy_pytorch_model

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(256, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 10),
    ).eval()
    body = json.dumps({"input": [0.1] * 256}).encode()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        deploy_pytorch_model(work / "models", "mlp", None, net, input_type="floats")
        port = free_port()
        with Server(
            [sys.executable, str(Path(__file__).parent / "_bare_server.py"), str(port), "mlp"], port
        ) as bare:
            wrk(f"{bare.base}/m/predict", body, 64, 2.0, 2)
            base = wrk(f"{bare.base}/m/predict", body, 64, args.seconds, 2)
        spec = (
            f"store: {work / 'models'}\nwatch: false\nserver: {{port: PORT}}\napis:\n"
            f"  - {{name: m, model: mlp, input_type: floats, threads: 1, slo_ms: {args.slo_ms:g},"
            " batching: {max_batch_size: 64, adaptive: true}}\n"
        )
        with modelcore_server(spec, work) as server:
            wrk(f"{server.base}/m/predict", body, 64, 3.0, 2)  # let AIMD settle
            with urllib.request.urlopen(f"{server.base}/v2/apis/m") as resp:
                before = json.loads(resp.read())["slo_defaults"]
            mine = wrk(f"{server.base}/m/predict", body, 64, args.seconds, 2)
            with urllib.request.urlopen(f"{server.base}/v2/apis/m") as resp:
                api = json.loads(resp.read())
            stats = api["batching"]["mlp"]
            defaults = api["slo_defaults"] - before
            with urllib.request.urlopen(f"{server.base}/v2/models/mlp") as resp:
                inline = json.loads(resp.read())["status"]["versions"][-1].get("inline")
    settled = max(1, round(stats["mean_batch_size"]))
    raw = rows_per_second(settled)
    raw1 = rows_per_second(1)
    print(machine_line("bench/batching.py"))
    print(
        "baselines, same run: (a) bare aiohttp handler, one model call per request; "
        "(b) the raw model in-process at the batch size the batcher settled on"
    )
    print()
    print(
        table(
            ["serving", "rows/s", "vs (a)", "share of (b)", "p50", "p99", "errors"],
            [
                [
                    "(a) bare aiohttp, batch 1",
                    f"{base.rps:.0f}",
                    "1.00x",
                    f"{base.rps / raw:.1%}",
                    f"{base.p50_ms:.1f} ms",
                    f"{base.p99_ms:.1f} ms",
                    str(base.errors),
                ],
                [
                    f"modelcore, adaptive (SLO {args.slo_ms:g} ms)",
                    f"{mine.rps:.0f}",
                    f"{mine.rps / base.rps:.2f}x",
                    f"{mine.rps / raw:.1%}",
                    f"{mine.p50_ms:.1f} ms",
                    f"{mine.p99_ms:.1f} ms",
                    str(mine.errors),
                ],
            ],
        )
    )
    print()
    print(
        f"(b) raw model in-process: {raw:.0f} rows/s at batch {settled} (mean batch the batcher "
        f"settled on; limit {stats['limit']}), {raw1:.0f} rows/s at batch 1"
    )
    print(f"where the MLP ran at the end: {'the event loop' if inline else 'threads'}")
    total = mine.rps * args.seconds
    print(
        f"p99 {mine.p99_ms:.1f} ms against the SLO of {args.slo_ms:g} ms: "
        f"{'inside' if mine.p99_ms <= args.slo_ms else 'OUTSIDE'}; {defaults} of ~{total:.0f} "
        f"requests ({defaults / max(total, 1):.2%}) answered the SLO's default"
    )


if __name__ == "__main__":
    main()
