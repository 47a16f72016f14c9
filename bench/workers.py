"""``modelcore serve --workers 2`` against one process, on the tiny model.

    .venv/bin/python bench/workers.py [--seconds 5]

Both serve the same spec; wrk loads each at 64 connections from a separate
process. Baseline: the single process, same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, modelcore_server, table, wrk
from overhead import SPEC, tiny

import modelcore


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    body = json.dumps({"input": [0.5] * 16}).encode()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        modelcore.deploy_python_closure(work / "models", "m", tiny)
        spec = SPEC.format(store=work / "models", extra=", batching: {max_batch_size: 64}")
        for workers in (1, 2):
            with modelcore_server(spec, work, "--workers", str(workers)) as server:
                wrk(f"{server.base}/m/predict", body, 64, 2.0, 2)  # warm every process
                results[workers] = wrk(f"{server.base}/m/predict", body, 64, args.seconds, 2)
    print(machine_line("bench/workers.py"))
    print("baseline: one server process, same spec, same run; wrk, 64 connections, 2 threads")
    print()
    one = results[1]
    rows = [
        [
            str(w),
            f"{r.rps:.0f}",
            f"{r.rps / one.rps:.2f}x",
            f"{r.p50_ms:.2f} ms",
            f"{r.p99_ms:.2f} ms",
            str(r.errors),
        ]
        for w, r in results.items()
    ]
    print(table(["processes", "req/s", "vs 1", "p50", "p99", "errors"], rows))


if __name__ == "__main__":
    main()
