"""modelcore against MLServer (Seldon's server): the same two models, side by side.

    .venv/bin/python bench/peers.py [--seconds 5] [--rounds 3] [--mlserver-env PATH] [--keep]

Models: the tiny numpy model of bench/overhead.py (a dot product of 16 numbers)
and the PyTorch MLP of bench/batching.py (256 -> 1024 -> 1024 -> 10, CPU, one
torch thread, one row per request). modelcore serves them as in those two
benchmarks (the tiny closure with batching up to 64; the MLP with adaptive
batching, threads 1, SLO 100 ms). MLServer serves them through a custom runtime
(bench/_mlserver_runtime.py), with its defaults apart from: free ports on
127.0.0.1, parallel_workers 0 (inference in the server process itself, a
single-process comparison like modelcore's; --mlserver-workers to change),
debug false (no access log) and its separate metrics server off (modelcore's /metrics
is a route of the same server and costs a request nothing unless scraped).

Each server is queried through its own native JSON endpoint: modelcore's
Clipper-style ``POST /<api>/predict`` with ``{"input": [...]}`` (the route its
users call; modelcore also serves the same protocol as MLServer) and MLServer's Open Inference Protocol
``POST /v2/models/<name>/infer``. wrk loads each from a separate process at 1,
8 and 64 connections after a 2 s warm-up. Both servers stay up (one idles while the
other is measured) and are measured in turns, --rounds times (default 3); each
figure is the median round, as this machine is shared and noisy.

MLServer is installed into its own virtual environment (pinned, with
torch==2.13.0), in a temporary folder removed afterwards unless --keep, or at
--mlserver-env PATH, which is kept and reused by later runs. OMP_NUM_THREADS=1
for every process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Load,
    Server,
    free_port,
    machine_line,
    median_run,
    modelcore_server,
    table,
    wrk,
)

import modelcore

os.environ["OMP_NUM_THREADS"] = "1"  # one torch thread, in every process started here

MLSERVER = "mlserver==1.7.1"
TORCH = "torch==2.13.0"
CONNECTIONS = (1, 8, 64)
RUNTIME = Path(__file__).resolve().parent / "_mlserver_runtime.py"


def make_tiny():  # type: ignore[no-untyped-def]
    """The dot product of 16 numbers with fixed weights, made once (as the bare handler's)."""
    import numpy as np

    weights = np.linspace(-1, 1, 16)

    def tiny(xs):  # type: ignore[no-untyped-def]
        return [float(np.dot(weights, x)) for x in xs]

    return tiny


tiny = make_tiny()


def build_mlp():  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(256, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 10),
    ).eval()


# name -> (MLServer runtime class, datatype, row)
MODELS = {
    "tiny": ("Tiny", "FP64", [i / 8 for i in range(16)]),
    "mlp": ("MLP", "FP32", [0.1] * 256),
}


def env_versions(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as md, json\n"
        "out = {}\n"
        "for d in ('mlserver', 'fastapi', 'uvicorn', 'uvloop', 'orjson', 'numpy', 'torch'):\n"
        "    try: out[d] = md.version(d)\n"
        "    except Exception: pass\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return json.loads(res.stdout) if res.returncode == 0 else {}


def ensure_mlserver(env: Path) -> tuple[str, float | None]:
    """MLServer installed in the virtual environment ``env``: (version, install seconds or None)."""
    python = env / "bin" / "python"
    if python.exists() and "mlserver" in env_versions(python):
        return env_versions(python)["mlserver"], None
    started = time.monotonic()
    print(f"installing {MLSERVER} and {TORCH} into {env} ...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(env)],
        [str(python), "-m", "pip", "install", "--quiet", MLSERVER, TORCH, "numpy"],
    ]
    for cmd in steps:
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            tail = "\n".join(
                line
                for line in (res.stdout + res.stderr).splitlines()
                if "is ignored: it is neither a file nor a directory" not in line
            )[-3000:]
            print(tail, file=sys.stderr)
            raise SystemExit(
                f"MLServer could not be installed ({' '.join(cmd[-4:])} exited with "
                f"{res.returncode}); no comparison was run"
            )
    version = env_versions(python).get("mlserver")
    if version is None:
        raise SystemExit(f"MLServer could not be installed: not importable from {python}")
    return version, time.monotonic() - started


def mlserver_models(folder: Path, workers: int) -> tuple[int, Path]:
    """Write settings.json and one model-settings.json per model; return (HTTP port, log path)."""
    folder.mkdir(parents=True)
    port = free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "metrics_endpoint": None,
        "parallel_workers": workers,
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    for name, (cls, _datatype, _row) in MODELS.items():
        (folder / name).mkdir()
        shutil.copy(RUNTIME, folder / name / RUNTIME.name)
        model = {"name": name, "implementation": f"{RUNTIME.stem}.{cls}"}
        (folder / name / "model-settings.json").write_text(json.dumps(model, indent=2))
    return port, folder.parent / "mlserver.log"


def post(url: str, body: bytes) -> dict:
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--mlserver-env",
        type=Path,
        help="virtual environment for MLServer: reused if it has MLServer, else installed there; kept",
    )
    parser.add_argument("--mlserver-workers", type=int, default=0, help="MLServer parallel_workers")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="modelcore-peers-"))
    try:
        env = args.mlserver_env.resolve() if args.mlserver_env else tmp / "mlserver-env"
        version, install_s = ensure_mlserver(env)
        mls_versions = env_versions(env / "bin" / "python")

        mls_bodies = {
            name: json.dumps(
                {"inputs": [{"name": "x", "shape": [1, len(row)], "datatype": dt, "data": row}]}
            ).encode()
            for name, (_cls, dt, row) in MODELS.items()
        }
        mc_bodies = {
            name: json.dumps({"input": row}).encode() for name, (_c, _d, row) in MODELS.items()
        }
        results: dict[str, dict[str, dict[int, Load]]] = {"mlserver": {}, "modelcore": {}}
        answers: dict[str, dict[str, list[float]]] = {"mlserver": {}, "modelcore": {}}

        port, log = mlserver_models(tmp / "mlserver" / "models", args.mlserver_workers)
        cmd = [
            "/bin/sh",
            "-c",
            'exec "$0" start "$1" >"$2" 2>&1',
            str(env / "bin" / "mlserver"),
            str(tmp / "mlserver" / "models"),
            str(log),
        ]
        try:
            server = Server(cmd, port)
        except RuntimeError as exc:
            print(log.read_text()[-3000:] if log.exists() else "", file=sys.stderr)
            raise SystemExit(f"MLServer did not start: {exc}") from exc
        from modelcore_pytorch import deploy_pytorch_model

        store = tmp / "modelcore" / "models"
        modelcore.deploy_python_closure(store, "tiny", tiny)
        deploy_pytorch_model(store, "mlp", None, build_mlp(), input_type="floats")
        spec = (
            f"store: {store}\nwatch: false\nserver: {{port: PORT}}\napis:\n"
            "  - {name: tiny, model: tiny, threads: 2, batching: {max_batch_size: 64}}\n"
            "  - {name: mlp, model: mlp, input_type: floats, threads: 1, slo_ms: 100,"
            " batching: {max_batch_size: 64, adaptive: true}}\n"
        )
        # This machine is shared and noisy: both servers stay up (idle while the other is
        # measured) and are measured in turns, --rounds times; each figure is the median round.
        with server, modelcore_server(spec, tmp / "modelcore") as mc:
            urls = {
                "mlserver": {n: f"{server.base}/v2/models/{n}/infer" for n in MODELS},
                "modelcore": {n: f"{mc.base}/{n}/predict" for n in MODELS},
            }
            bodies = {"mlserver": mls_bodies, "modelcore": mc_bodies}
            for who, per_model in urls.items():
                for name, url in per_model.items():
                    wrk(url, bodies[who][name], 64, 2.0, 2)  # warm-up
            runs: dict[tuple[str, str, int], list[Load]] = {}
            for _ in range(args.rounds):
                for name in MODELS:
                    for c in CONNECTIONS:
                        for who, per_model in urls.items():
                            load = wrk(per_model[name], bodies[who][name], c, args.seconds, 2)
                            runs.setdefault((who, name, c), []).append(load)
            for (who, name, c), loads in runs.items():
                results[who].setdefault(name, {})[c] = median_run(loads)
            # compared once warm: a cold first call may answer an SLO's default
            for name in MODELS:
                answers["mlserver"][name] = post(urls["mlserver"][name], mls_bodies[name])[
                    "outputs"
                ][0]["data"]
                out = post(urls["modelcore"][name], mc_bodies[name])["output"]
                answers["modelcore"][name] = out if isinstance(out, list) else [out]
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(machine_line("bench/peers.py"))
    print(
        "# MLServer env: "
        + ", ".join(f"{k} {v}" for k, v in mls_versions.items())
        + "  "
        + (
            f"(installed in {install_s:.0f} s)"
            if install_s is not None
            else f"(reused {env}, no install)"
        )
    )
    print(
        f"MLServer {version}: custom MLModel runtime, parallel_workers {args.mlserver_workers}"
        + (" (inference in the server process)" if args.mlserver_workers == 0 else "")
        + ", no adaptive batching (its default), debug false, metrics off; "
        "modelcore: batching up to 64 (MLP: adaptive, threads 1, SLO 100 ms)"
    )
    print(
        "queried through each server's native JSON endpoint: MLServer POST /v2/models/<name>/infer "
        '(Open Inference Protocol), modelcore POST /<api>/predict ({"input": [...]}, '
        "its Clipper route)"
    )
    print(
        f"wrk, 2 threads, {args.seconds:g} s per point after a 2 s warm-up; one row per request;"
        f" servers measured in turns, each figure the median of {args.rounds} rounds"
    )
    for name in MODELS:
        a, b = answers["mlserver"][name], answers["modelcore"][name]
        agree = len(a) == len(b) and all(
            abs(x - y) <= 1e-4 * max(1.0, abs(x)) for x, y in zip(a, b, strict=True)
        )
        print()
        title = "tiny (16-number dot product)" if name == "tiny" else "MLP 256->1024->1024->10"
        print(f"{title}; answers {'agree' if agree else 'DIFFER: ' + repr((a[:3], b[:3]))}")
        rows = []
        for c in CONNECTIONS:
            m, o = results["mlserver"][name][c], results["modelcore"][name][c]
            rows.append(
                [
                    str(c),
                    f"{m.rps:.0f}",
                    f"{o.rps:.0f}",
                    f"{o.rps / m.rps:.2f}x",
                    f"{m.p50_ms:.2f} ms",
                    f"{o.p50_ms:.2f} ms",
                    f"{m.p99_ms:.2f} ms",
                    f"{o.p99_ms:.2f} ms",
                    f"{m.errors} / {o.errors}",
                ]
            )
        print(
            table(
                [
                    "connections",
                    "MLServer req/s",
                    "modelcore req/s",
                    "modelcore/MLServer",
                    "MLServer p50",
                    "modelcore p50",
                    "MLServer p99",
                    "modelcore p99",
                    "errors (MLS / mc)",
                ],
                rows,
            )
        )

    def ratio(name: str, c: int) -> float:
        return results["modelcore"][name][c].rps / results["mlserver"][name][c].rps

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    tiny64 = ratio("tiny", 64)
    mlp = {c: ratio("mlp", c) for c in CONNECTIONS}
    print()
    print("targets (req/s = rows/s, one row per request):")
    print(
        f"- tiny, 64 connections: at least 4x MLServer's req/s: {tiny64:.2f}x, {verdict(tiny64 >= 4)}"
    )
    print(
        "- MLP: higher rows/s than MLServer at every concurrency: "
        + ", ".join(f"{c}: {r:.2f}x" for c, r in mlp.items())
        + f", {verdict(all(r > 1 for r in mlp.values()))}"
    )
    print(
        f"- MLP, 64 connections: at least 3x MLServer's rows/s (batching issue): "
        f"{mlp[64]:.2f}x, {verdict(mlp[64] >= 3)}"
    )


if __name__ == "__main__":
    main()
