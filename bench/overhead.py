"""modelcore's overhead against a bare aiohttp handler doing the same work.

    .venv/bin/python bench/overhead.py [--seconds 5]

A tiny numpy model (a dot product of 16 numbers) served by modelcore, and by
a bare aiohttp handler that parses the same JSON, makes the same numpy array,
calls the same function inline and encodes the same answer (the baseline,
bench/_bare_server.py). wrk loads each from a separate process at 1, 8 and
64 connections. modelcore batches concurrent requests and runs predictions
as its default does (``isolation`` unset: threads, until the model proves it
answers in microseconds, then on the event loop), always in a thread
(``isolation: thread``: one thread hop serves many requests), or on the event
loop from the first call (``isolation: inline``), as the bare handler does.
Also measured at 64: without batching, with the standard event loop instead of
uvloop, and with the standard json module.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Server, free_port, machine_line, median_run, modelcore_server, table, wrk

import modelcore


def make_tiny():  # type: ignore[no-untyped-def]
    """The dot product of 16 numbers with fixed weights, made once (as the bare handler's)."""
    import numpy as np

    weights = np.linspace(-1, 1, 16)

    def tiny(xs):  # type: ignore[no-untyped-def]
        return [float(np.dot(weights, x)) for x in xs]

    return tiny


tiny = make_tiny()


SPEC = """store: {store}
watch: false
server: {{port: PORT}}
apis:
  - {{name: m, model: m, threads: 2{extra}}}
"""


def _runs_inline(base: str) -> bool:
    """Whether the served version of ``m`` predicts on the event loop now."""
    with urllib.request.urlopen(f"{base}/v2/models/m", timeout=10) as resp:
        return bool(json.load(resp)["status"]["versions"][-1].get("inline"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    body = json.dumps({"input": [0.5] * 16}).encode()
    batching = ", batching: {max_batch_size: 64}"
    threads = ", isolation: thread" + batching
    inline = ", isolation: inline" + batching
    main_rows = {"default": batching, "threads": threads, "inline": inline}
    results: dict[str, dict[int, Any]] = {}
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
        # This machine is shared and noisy: all servers stay up and are measured in turns,
        # --rounds times, and each figure is the median of its rounds.
        with contextlib.ExitStack() as stack:
            servers = {"bare": stack.enter_context(Server(bare_cmd, port))}
            for name, extra in main_rows.items():
                (work / name).mkdir()
                spec = SPEC.format(store=work / "models", extra=extra)
                servers[name] = stack.enter_context(modelcore_server(spec, work / name))
            rounds: dict[str, dict[int, list[Any]]] = {name: {} for name in servers}
            for _ in range(args.rounds):
                for c in (1, 8, 64):
                    for name, server in servers.items():
                        load = wrk(f"{server.base}/m/predict", body, c, args.seconds, 2)
                        rounds[name].setdefault(c, []).append(load)
            for name, per_c in rounds.items():
                results[name] = {c: median_run(loads) for c, loads in per_c.items()}
            where = _runs_inline(servers["default"].base)
        variants = {
            "default, no batching": ("", [], {}),
            "threads, no batching": (", isolation: thread", [], {}),
            "default, asyncio loop (no uvloop)": (batching, ["--loop", "asyncio"], {}),
            "default, stdlib json (no orjson)": (batching, [], {"MODELCORE_JSON": "json"}),
        }
        for name, (extra, flags, env) in variants.items():
            old = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                spec = SPEC.format(store=work / "models", extra=extra)
                (work / name.replace(" ", "_")).mkdir()
                with modelcore_server(spec, work / name.replace(" ", "_"), *flags) as server:
                    wrk(f"{server.base}/m/predict", body, 8, 1.0, 2)  # the default proves itself
                    results[name] = {64: wrk(f"{server.base}/m/predict", body, 64, args.seconds, 2)}
            finally:
                for k, v in old.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
    print(machine_line("bench/overhead.py"))
    print(
        "baseline: a bare aiohttp handler doing the same parsing, model call and encoding, same run;\n"
        "each figure the median of --rounds alternating runs; modelcore with batching (max 64),\n"
        "predictions as by default (threads until the model proves fast, then the event loop),\n"
        "always in threads (isolation: thread), or on the event loop (isolation: inline)"
    )
    print(f"the default's model ran on the event loop at the end: {where}")
    print()
    rows = []
    for c in (1, 8, 64):
        b = results["bare"][c]
        for name in main_rows:
            m = results[name][c]
            rows.append(
                [
                    str(c),
                    name,
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
                "modelcore runs the model",
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
    for name in results:
        if name == "bare":
            continue
        r = results[name][64]
        rows.append(
            [name, f"{r.rps:.0f}", f"{r.rps / results['bare'][64].rps:.2f}x", f"{r.p50_ms:.2f} ms"]
        )
    print(table(["variant", "req/s", "vs bare", "p50"], rows))


if __name__ == "__main__":
    main()
