"""The command line, including ``modelcore serve`` as a real subprocess talking HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import modelcore

CLI = [sys.executable, "-m", "modelcore"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.slow
def test_serve_subprocess_answers_http_and_stops_on_sigterm(
    add1_store: Path, tmp_path: Path
) -> None:
    port = _free_port()
    spec = tmp_path / "api.yaml"
    spec.write_text(
        f"store: {add1_store}\nserver: {{port: {port}}}\napis:\n  - {{name: add1, model: add1}}\n"
    )
    proc = subprocess.Popen(
        [*CLI, "serve", str(spec)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if _http("GET", f"{base}/v2/health/ready")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.1)
        assert _http("POST", f"{base}/add1/predict", {"input": [1.0, 2.0]}) == (
            200,
            {"query_id": 0, "output": 2.0, "default": False},
        )
        status, body = _http("POST", f"{base}/add1/predict", {"input": "oops"})
        assert status == 400 and "expected a JSON array" in body["error"]
        listed = json.loads(run_cli("models", "--server", base, "--json").stdout)
        assert listed == [
            {"name": "add1", "version": "1", "state": "READY", "reason": "", "serving": True}
        ]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_validate_reports_file_line_and_field(tmp_path: Path, add1_store: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        f"store: {add1_store}\napis:\n  - name: add1\n    model: add1\n    threads: 0\n"
    )
    result = run_cli("validate", str(spec))
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"error: {spec}:5: apis.0.threads: Input should be greater than 0"
    )
    assert "Traceback" not in result.stderr
    spec.write_text(f"store: {add1_store}\napis:\n  - name: add1\n    model: add1\n")
    result = run_cli("validate", str(spec))
    assert result.returncode == 0 and "ok (1 APIs)" in result.stdout


def test_serve_with_bad_spec_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = run_cli("serve", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cannot read spec" in result.stderr


def test_plugins_lists_backends_and_broken_plugins(tmp_path: Path) -> None:
    result = run_cli("plugins", "--json")
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["python_closure"]["backends"] == ["python_closure"]
    assert rows["python_closure"]["distribution"] == "modelcore-python"
    assert rows["python_closure"]["status"] == "ok"
    result = run_cli("plugins", env={"MODELCORE_DISABLE_PLUGINS": "python_closure"})
    assert any(
        line.split()[0] == "python_closure" and "disabled" in line
        for line in result.stdout.splitlines()[1:]
    )


def test_models_lists_versions_backend_and_creation(store_dir: Path) -> None:
    modelcore.deploy_python_closure(store_dir, "a", lambda xs: xs)
    modelcore.deploy_python_closure(store_dir, "a", lambda xs: xs)
    (store_dir / "a" / "3").mkdir()
    rows = json.loads(run_cli("models", str(store_dir), "--json").stdout)
    assert [(r["model"], r["version"], r["backend"], r["state"]) for r in rows] == [
        ("a", 1, "python_closure", "complete"),
        ("a", 2, "python_closure", "complete"),
        ("a", 3, "", "no manifest"),
    ]
    assert all(r["created"] for r in rows[:2])
    table = run_cli("models", str(store_dir)).stdout
    assert table.splitlines()[0].split() == [
        "MODEL",
        "VERSION",
        "BACKEND",
        "FORMAT",
        "CREATED",
        "STATE",
    ]


def test_core_and_server_import_no_ml_framework() -> None:
    code = (
        "import sys, modelcore, modelcore.server, modelcore.cli, modelcore.plugins as p; "
        "p.plugin_manager().backends(); "
        "print([m for m in ('torch','tensorflow','pyspark','mxnet','onnxruntime','onnx') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.slow
def test_serve_workers_share_one_port(add1_store: Path, tmp_path: Path) -> None:
    port = _free_port()
    spec = tmp_path / "api.yaml"
    spec.write_text(
        f"store: {add1_store}\nserver: {{port: {port}}}\napis:\n  - {{name: add1, model: add1}}\n"
    )
    modelcore.deploy_python_closure(add1_store, "pid", lambda xs: [os.getpid() for _ in xs])
    spec.write_text(spec.read_text() + "  - {name: pid, model: pid}\n")
    proc = subprocess.Popen(
        [*CLI, "serve", str(spec), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        pids: set[int] = set()
        deadline = time.monotonic() + 90
        while len(pids) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, pids
            try:
                status, body = _http("POST", f"{base}/pid/predict", {"input": [0.0]})
                if status == 200:
                    pids.add(body["output"])
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert _http("POST", f"{base}/add1/predict", {"input": [1.0]})[1]["output"] == 2.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
