"""``modelcore serve / validate / plugins / models``: errors are one line and a non-zero exit."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from modelcore.errors import ModelcoreError

log = logging.getLogger("modelcore")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result: int = args.func(args)
        return result
    except ModelcoreError as exc:
        print(f"error: {exc.message}" + (f" ({exc.cause})" if exc.cause else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelcore", description=__doc__)
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve every API in a spec")
    serve.add_argument("spec")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT); each watches the store",
    )
    serve.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="event loop: uvloop when installed (the 'fast' extra), else asyncio",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    validate = sub.add_parser(
        "validate", help="check a spec (and that its models are in the store)"
    )
    validate.add_argument("spec")
    validate.add_argument("--no-store", action="store_true", help="do not look into the store")
    validate.set_defaults(func=cmd_validate)

    plugins = sub.add_parser("plugins", help="list installed plugins and their backends")
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(func=cmd_plugins)

    models = sub.add_parser(
        "models", help="list the models and versions in a store (or their states in a server)"
    )
    models.add_argument("store", nargs="?", help="a path or fsspec URL")
    models.add_argument("--server", help="a running server's URL, e.g. http://127.0.0.1:8080")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from modelcore.plugins import plugin_manager
    from modelcore.server import create_app
    from modelcore.spec import load_spec

    loaded = load_spec(args.spec)
    host = args.host or loaded.spec.server.host
    port = args.port if args.port is not None else loaded.spec.server.port
    if args.workers > 1:
        return _serve_processes(args, host, port)
    loop_name = _use_loop(args.loop)
    app = create_app(loaded, pm=plugin_manager(), host=host)
    names = ", ".join(a.name for a in loaded.spec.apis)
    if not args.reuse_port:
        print(
            f"modelcore: serving {names} on http://{host}:{port} (spec {args.spec}, {loop_name})",
            flush=True,
        )
    # What is built by now (imports, the spec, the app) lives as long as the server: out of
    # the collector's way, a full collection no longer walks it (27 ms -> 2 ms measured).
    # Models load after this, so their objects are collected as usual when a swap drops them.
    gc.collect()
    gc.freeze()
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,
        handle_signals=True,
        shutdown_timeout=loaded.spec.server.shutdown_grace_s,
        reuse_port=args.reuse_port or None,
    )
    return 0


def _use_loop(choice: str) -> str:
    """Install uvloop when asked (or, with ``auto``, when it is installed); name the loop."""
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            from modelcore.errors import ModelcoreError

            raise ModelcoreError(
                "--loop uvloop: uvloop is not installed (pip install modelcore[fast])"
            ) from None
        return "asyncio"
    uvloop.install()
    return "uvloop"


def _serve_processes(args: argparse.Namespace, host: str, port: int) -> int:
    """Run ``--workers`` server processes on one port; restart any that dies; stop them together."""
    import signal
    import subprocess
    import time

    from modelcore.errors import BadRequest

    if port == 0:
        raise BadRequest("--workers needs a fixed --port (the processes share it)")
    cmd = [
        sys.executable,
        "-m",
        "modelcore",
        "--log-level",
        args.log_level,
        "serve",
        args.spec,
        "--host",
        host,
        "--port",
        str(port),
        "--loop",
        args.loop,
        "--reuse-port",
    ]
    children = [subprocess.Popen(cmd) for _ in range(args.workers)]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"modelcore: serving {args.spec} on http://{host}:{port} with {args.workers} processes "
        f"(pids {', '.join(str(c.pid) for c in children)})",
        flush=True,
    )
    while True:
        time.sleep(0.2)
        if stopping:
            codes = [child.wait() for child in children]
            return 0 if all(code == 0 for code in codes) else 1
        for i, child in enumerate(children):
            if child.poll() is not None:
                log.error(
                    "server process %s exited with %s; starting another",
                    child.pid,
                    child.returncode,
                )
                children[i] = subprocess.Popen(cmd)


def cmd_validate(args: argparse.Namespace) -> int:
    from modelcore.plugins import plugin_manager
    from modelcore.spec import load_spec
    from modelcore.store import ModelStore
    from modelcore.validate import check_spec

    loaded = load_spec(args.spec)
    store = None if args.no_store else ModelStore(loaded.store_url, loaded.spec.storage_options)
    check_spec(loaded, plugin_manager(), store)
    print(f"{args.spec}: ok ({len(loaded.spec.apis)} APIs)")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from modelcore.plugins import plugin_manager

    pm = plugin_manager()
    rows = [vars(s) for s in sorted(pm.statuses.values(), key=lambda s: s.name)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    _table(rows, ["name", "distribution", "version", "backends", "status", "error"])
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    rows = _server_models(args.server) if args.server else _store_models(args.store)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no models in {args.server or args.store}")
    elif args.server:
        _table(rows, ["name", "version", "state", "serving", "reason"])
    else:
        _table(rows, ["model", "version", "backend", "format", "created", "state"])
    return 0


def _store_models(url: str | None) -> list[dict[str, Any]]:
    from modelcore.errors import BadRequest
    from modelcore.store import ModelStore

    if not url:
        raise BadRequest("give a store (a path or URL) or --server URL")
    store = ModelStore(url)
    rows: list[dict[str, Any]] = []
    for name in store.list_models():
        complete = set(store.list_versions(name))
        for version in store.list_versions(name, complete_only=False):
            if version in complete:
                m = store.read_manifest(name, version)
                rows.append(
                    {
                        "model": name,
                        "version": version,
                        "backend": m.backend,
                        "created": m.created.isoformat(),
                        "format": m.format or "",
                        "state": "complete",
                    }
                )
            else:
                rows.append(
                    {
                        "model": name,
                        "version": version,
                        "backend": "",
                        "created": "",
                        "format": "",
                        "state": "no manifest",
                    }
                )
    return rows


def _server_models(url: str) -> list[dict[str, Any]]:
    import urllib.error
    import urllib.request

    from modelcore.errors import ModelcoreError

    request = urllib.request.Request(
        url.rstrip("/") + "/v2/repository/index",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            rows: list[dict[str, Any]] = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ModelcoreError(f"cannot read {url}: {exc}") from None
    return rows


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    def cell(value: Any) -> str:
        if isinstance(value, list):
            return ",".join(map(str, value)) or "-"
        return "-" if value in (None, "") else str(value)

    widths = {c: max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(cell(row.get(c)).ljust(widths[c]) for c in columns).rstrip())


if __name__ == "__main__":
    sys.exit(main())
