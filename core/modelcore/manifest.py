"""The per-version manifest, ``modelcore.yaml``: what a version is and how it was made.

It is written last when a version is published, so a version folder without it
is incomplete (or a bare folder that only a handler or a named backend reads).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelcore.errors import StoreError

MANIFEST_NAME = "modelcore.yaml"
SCHEMA_VERSION = 1


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    size: int
    sha256: str


class Manifest(BaseModel):
    """Everything needed to load a version, and to tell why it cannot be loaded."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    name: str
    version: int
    backend: str
    created: dt.datetime
    format: str | None = None
    input_type: str = "doubles"
    python_version: str = Field(default_factory=platform.python_version)
    cloudpickle_version: str | None = None
    modelcore_version: str | None = None
    frameworks: dict[str, str] = Field(default_factory=dict)
    pkgs_to_install: list[str] = Field(default_factory=list)
    has_function: bool = False
    files: list[FileEntry] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    signature: str | None = None
    """``"hmac-sha256:<hex>"`` over the rest of the manifest, when deployed with a signing key."""

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str, source: str = MANIFEST_NAME) -> Manifest:
        try:
            data = yaml.safe_load(text)
            return cls.model_validate(data)
        except (yaml.YAMLError, ValidationError) as exc:
            raise StoreError(f"{source}: invalid manifest", cause=str(exc)) from exc

    @classmethod
    def read(cls, directory: str | os.PathLike[str]) -> Manifest:
        path = Path(directory) / MANIFEST_NAME
        return cls.from_yaml(path.read_text(), str(path))

    def write(self, directory: str | os.PathLike[str]) -> Path:
        path = Path(directory) / MANIFEST_NAME
        tmp = path.with_name(MANIFEST_NAME + ".tmp")
        tmp.write_text(self.to_yaml())
        os.replace(tmp, path)
        return path


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(directory: str | os.PathLike[str]) -> list[FileEntry]:
    """Every file under ``directory`` (but the manifest), sorted, with size and sha256."""
    root = Path(directory)
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel == MANIFEST_NAME:
            continue
        entries.append(FileEntry(path=rel, size=path.stat().st_size, sha256=sha256_file(path)))
    return entries


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
