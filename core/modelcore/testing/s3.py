"""A local S3 server (moto) for tests, on 127.0.0.1 only, started from its own environment.

moto[server] pins a botocore that s3fs's aiobotocore refuses, so it lives in
``.venv-moto`` (made by scripts/setup.sh), and the tests talk to it over HTTP
exactly as they would to S3.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["S3Server", "moto_server_binary", "start_s3_server"]


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]

    @property
    def storage_options(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint,
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"region_name": "us-east-1"},
        }

    def new_bucket(self) -> str:
        """Create a fresh bucket (a plain PUT: moto needs no signature) and return its name."""
        name = f"mc-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        urllib.request.urlopen(request, timeout=10).read()
        return name


def moto_server_binary() -> Path:
    """``$MODELCORE_MOTO_SERVER``, else ``.venv-moto/bin/moto_server`` here or in the checkout."""
    configured = os.environ.get("MODELCORE_MOTO_SERVER")
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parents[3]
    for base in (Path.cwd(), checkout):
        path = base / ".venv-moto" / "bin" / "moto_server"
        if path.exists():
            return path
    found = shutil.which("moto_server")
    if found:
        return Path(found)
    raise RuntimeError(
        "no moto_server found: run scripts/setup.sh (it builds .venv-moto with moto[server]) "
        "or set MODELCORE_MOTO_SERVER"
    )


def start_s3_server() -> S3Server:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [str(moto_server_binary()), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1).read()
            return S3Server(endpoint, process)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the moto S3 server did not start") from None
            time.sleep(0.1)
