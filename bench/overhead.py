"""modelcore's overhead against a bare aiohttp handler doing the same work.

    .venv/bin/python bench/overhead.py [--seconds 5]

A tiny numpy model (a dot product of 16 numbers) served by modelcore, and by
a bare aiohttp handler that parses the same JSON, makes the same numpy array,
calls the same function inline and encodes the same answer (the baseline,
bench/_bare_server.py). wrk loads each from a separate process at 1, 8 and
64 connections. modelcore runs predictions off the event loop (a rule the
bare handler does not follow) and batches concurrent requests, so one thread
hop serves many requests. Also measured: the same without batching, with the
standard event loop instead of uvloop, and with the standard json module.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Server, free_port, machine_line, modelcore_server, table, wrk

import modelcore


def tiny(xs):
    import numpy as np

    weights = np.linspace(-1, 1, 16)
    return [float(np.dot(weights, x)) for x in xs]


SPEC = """store: {store}
watch: false
server: {{port: PORT}}
apis:
  - {{name: m, model: m, threads: 2{extra}}}
"""


def _median(loads: list[Any]) -> Any:
    """The run with the median requests/s (its latencies come with it)."""
    return sorted(loads, key=lambda load: load.rps)[len(loads) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    body = json.dumps({"input": [0.5] * 16}).encode()
    results: dict[str, dict[int, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        modelcore.deploy_python_closure(work / "models", "m", tiny)
        port = free_port()
        bare_cmd = [
            sys.executable,
            str(Path(__file__).parent / "_bare_server.py"),
            str(port),
            "tiny",
        ]
        batching = ", batching: {max_batch_size: 64}"
        spec = SPEC.format(store=work / "models", extra=batching)
        # This machine is shared and noisy: both servers stay up and are measured in turns,
        # --rounds times, and each figure is the median of its rounds.
        with Server(bare_cmd, port) as bare, modelcore_server(spec, work) as mine:
            rounds: dict[str, dict[int, list[Any]]] = {"bare": {}, "modelcore": {}}
            for _ in range(args.rounds):
                for c in (1, 8, 64):
                    for name, server in (("bare", bare), ("modelcore", mine)):
                        load = wrk(f"{server.base}/m/predict", body, c, args.seconds, 2)
                        rounds[name].setdefault(c, []).append(load)
            for name, per_c in rounds.items():
                results[name] = {c: _median(loads) for c, loads in per_c.items()}
        variants = {
            "modelcore, no batching": ("", [], {}),
            "modelcore, asyncio loop": (batching, ["--loop", "asyncio"], {}),
            "modelcore, stdlib json": (batching, [], {"MODELCORE_JSON": "json"}),
        }
        for name, (extra, flags, env) in variants.items():
            import os

            old = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                spec = SPEC.format(store=work / "models", extra=extra)
                with modelcore_server(spec, work, *flags) as server:
                    conc = (64,)
                    results[name] = {
                        c: wrk(f"{server.base}/m/predict", body, c, args.seconds, 2) for c in conc
                    }
            finally:
                for k, v in old.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
    print(machine_line("bench/overhead.py"))
    print(
        "baseline: a bare aiohttp handler doing the same parsing, model call and encoding, same run;\n"
        "each figure the median of --rounds alternating runs"
    )
    print()
    rows = []
    for c in (1, 8, 64):
        b, m = results["bare"][c], results["modelcore"][c]
        rows.append(
            [
                str(c),
                f"{b.rps:.0f}",
                f"{m.rps:.0f}",
                f"{m.rps / b.rps:.2f}x",
                f"{b.p50_ms:.3f} ms",
                f"{m.p50_ms:.3f} ms",
                f"{m.p50_ms / b.p50_ms:.2f}x",
                f"{m.p99_ms:.2f} ms",
                str(m.errors),
            ]
        )
    print(
        table(
            [
                "connections",
                "bare req/s",
                "modelcore req/s",
                "ratio",
                "bare p50",
                "modelcore p50",
                "p50 ratio",
                "modelcore p99",
                "errors",
            ],
            rows,
        )
    )
    print()
    print("at 64 connections, against the bare handler:")
    rows = []
    for name in (
        "modelcore",
        "modelcore, no batching",
        "modelcore, asyncio loop",
        "modelcore, stdlib json",
    ):
        r = results[name][64]
        rows.append(
            [name, f"{r.rps:.0f}", f"{r.rps / results['bare'][64].rps:.2f}x", f"{r.p50_ms:.2f} ms"]
        )
    print(table(["variant", "req/s", "vs bare", "p50"], rows))


if __name__ == "__main__":
    main()
