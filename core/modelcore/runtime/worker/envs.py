"""Virtual environments for isolated workers, built once per set of requirements and cached.

An environment holds modelcore's core and the model's backend plugin, installed
from the same source and version the server runs (an editable checkout stays a
checkout), plus the model's requirements (``pkgs_to_install``, the backend's own,
the spec's). Its folder is named by a hash of all of that, so a second model
with the same needs reuses it, and a change of any of them builds a new one.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata as md
import json
import logging
import os
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from modelcore.errors import LoadError

log = logging.getLogger(__name__)

READY = ".modelcore-env-ready"


def default_env_root() -> Path:
    configured = os.environ.get("MODELCORE_ENV_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "modelcore" / "envs"


def install_source(distribution: str) -> str:
    """How to install ``distribution`` as the server has it: a local path, or ``name==version``."""
    try:
        dist = md.distribution(distribution)
    except md.PackageNotFoundError:
        raise LoadError(f"{distribution} is not installed in the server's environment") from None
    text = dist.read_text("direct_url.json")
    if text:
        info = json.loads(text)
        url = info.get("url", "")
        if url.startswith("file://") and "dir_info" in info:
            return url[len("file://") :]
    return f"{dist.metadata['Name']}=={dist.version}"


class EnvBuilder:
    """Builds (once) and finds worker environments under ``root``."""

    def __init__(self, root: Path | None = None, base_python: str | None = None):
        self.root = root or default_env_root()
        self.base_python = base_python or sys.executable

    def key(
        self, sources: Iterable[str], requirements: Iterable[str], excluded: Iterable[str]
    ) -> str:
        spec = {
            "python": sys.version.split()[0],
            "sources": sorted(set(sources)),
            "requirements": sorted(set(requirements)),
            "excluded": sorted(set(excluded)),
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def ensure(
        self,
        sources: list[str],
        requirements: list[str],
        excluded: Iterable[str] = (),
        label: str = "",
    ) -> str:
        """The Python executable of an environment with all of it installed (built if missing)."""
        key = self.key(sources, requirements, excluded)
        env = self.root / key
        python = env / "bin" / "python"
        if (env / READY).exists():
            return str(python)
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per environment, across processes
            if (env / READY).exists():
                return str(python)
            self._build(env, sources, requirements, list(excluded), label)
        return str(python)

    def _build(
        self,
        env: Path,
        sources: list[str],
        requirements: list[str],
        excluded: list[str],
        label: str,
    ) -> None:
        shutil.rmtree(env, ignore_errors=True)
        log.info(
            "building the worker environment %s for %s: %s (once; later loads reuse it)",
            env.name,
            label or "a model",
            ", ".join(requirements) or "no extra packages",
        )
        self._run([self.base_python, "-m", "venv", str(env)], label)
        pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
        args: list[str] = []
        for source in sources:
            args += ["-e", source] if os.path.isdir(source) else [source]
        self._run(pip + args + list(requirements), label)
        present = [d for d in excluded if self._has(env, d)]
        if present:
            self._run(
                [str(env / "bin" / "python"), "-m", "pip", "uninstall", "-y", *present], label
            )
        (env / READY).write_text(json.dumps({"sources": sources, "requirements": requirements}))
        log.info("worker environment %s is ready", env.name)

    @staticmethod
    def _has(env: Path, distribution: str) -> bool:
        probe = f"import importlib.metadata as m; m.version({distribution!r})"
        return (
            subprocess.run(
                [str(env / "bin" / "python"), "-c", probe], capture_output=True
            ).returncode
            == 0
        )

    @staticmethod
    def _run(cmd: list[str], label: str) -> None:
        tail: deque[str] = deque(maxlen=30)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if "is ignored: it is neither a file nor a directory" in line:
                continue
            tail.append(line)
            if line.startswith(("Collecting", "Successfully", "ERROR")):
                log.info("env %s: %s", label, line)
        if proc.wait() != 0:
            errors = [line for line in tail if "ERROR" in line] or list(tail)[-5:]
            raise LoadError(
                f"cannot build the worker environment for {label}: " + " | ".join(errors),
                cause=f"{cmd[0]} {' '.join(cmd[1:4])}... exited with {proc.returncode}",
            )
