"""Idle memory of a server with one closure model, with every plugin installed.

    .venv/bin/python bench/memory.py

Measures the resident set size of ``modelcore serve`` after it answered one
request, against a baseline measured in the same run: the bare aiohttp server
of bench/_bare_server.py (a Python process with aiohttp and numpy loaded).
Also reports which ML frameworks the serving process imported (none should:
plugins import their framework only when a model of theirs loads).
"""

from __future__ import annotations

import json
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Server, free_port, machine_line, modelcore_server, table

import modelcore
from modelcore.plugins import get_plugin_manager

FRAMEWORKS = ("torch", "tensorflow", "onnxruntime", "onnx", "pyspark", "mxnet", "keras")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def imported_frameworks(pid: int) -> list[str]:
    """Frameworks whose shared libraries or packages the process has mapped."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [f for f in FRAMEWORKS if f"/site-packages/{f}/" in maps]


def main() -> None:
    plugins = sorted(s.name for s in get_plugin_manager().statuses.values() if s.status == "ok")
    body = json.dumps({"input": [1.0]}).encode()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        modelcore.deploy_python_closure(work / "models", "add1", lambda xs: [x[0] + 1 for x in xs])
        port = free_port()
        with Server(
            [sys.executable, str(Path(__file__).parent / "_bare_server.py"), str(port)], port
        ) as bare:
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{bare.base}/m/predict", data=json.dumps({"input": [0.5] * 16}).encode()
                )
            ).read()
            bare_rss = rss_kib(bare.proc.pid)
        spec = f"store: {work / 'models'}\nserver: {{port: PORT}}\napis:\n  - {{name: add1, model: add1}}\n"
        with modelcore_server(spec, work) as server:
            urllib.request.urlopen(
                urllib.request.Request(f"{server.base}/add1/predict", data=body)
            ).read()
            mine = rss_kib(server.proc.pid)
            loaded = imported_frameworks(server.proc.pid)
    print(machine_line("bench/memory.py"))
    print(f"plugins installed: {', '.join(plugins)}")
    print("baseline: the bare aiohttp server (aiohttp + numpy + orjson), same run")
    print()
    print(
        table(
            ["process", "RSS", "vs baseline"],
            [
                ["bare aiohttp server", f"{bare_rss / 1024:.1f} MiB", "1.00x"],
                [
                    "modelcore serve, one closure",
                    f"{mine / 1024:.1f} MiB",
                    f"{mine / bare_rss:.2f}x",
                ],
            ],
        )
    )
    print()
    print(
        f"target: under 120 MB: {'met' if mine * 1024 < 120e6 else 'MISSED'} ({mine * 1024 / 1e6:.0f} MB)"
    )
    print(f"ML frameworks loaded by the serving process: {', '.join(loaded) or 'none'}")


if __name__ == "__main__":
    main()
