"""A versioned model store on fsspec: listing, reading and atomic publishing.

Layout: ``<root>/<model>/<version>/modelcore.yaml`` plus the backend's files.
A local publish stages into a hidden sibling folder and renames it into place;
a remote publish uploads every file and the manifest last. Either way a reader
never sees half a version: a folder without a manifest is not a version.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from modelcore.errors import Conflict, NotFound, StoreError
from modelcore.manifest import MANIFEST_NAME, Manifest
from modelcore.store.layout import check_model_name, check_version, is_model_name, parse_version

STAGING_PREFIX = ".staging-"


class ModelStore:
    """A model store rooted at a local path or an fsspec URL (``s3://bucket/prefix``)."""

    def __init__(
        self,
        url: str | os.PathLike[str],
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ):
        self.url = str(url)
        self.storage_options = dict(storage_options or {})
        try:
            fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        except (ImportError, ValueError) as exc:
            raise StoreError(f"cannot open store {self.url!r}: {exc}") from exc
        self.fs: fsspec.AbstractFileSystem = fs
        self.is_local = isinstance(fs, LocalFileSystem)
        self.root = root.rstrip("/") if not self.is_local else str(Path(root).resolve())
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.cache_dir = (
            Path(cache_dir)
            if cache_dir
            else (
                Path(os.environ.get("MODELCORE_CACHE", Path.home() / ".cache" / "modelcore"))
                / digest
            )
        )

    def __repr__(self) -> str:
        return f"ModelStore({self.url!r})"

    # -- paths ----------------------------------------------------------------
    def model_path(self, name: str) -> str:
        return f"{self.root}/{check_model_name(name)}"

    def version_path(self, name: str, version: int) -> str:
        return f"{self.model_path(name)}/{check_version(version)}"

    # -- listing --------------------------------------------------------------
    def _children(self, path: str) -> list[tuple[str, str]]:
        """(basename, type) of the entries directly under ``path``; [] when it does not exist."""
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        out = []
        for entry in entries:
            base = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            out.append((base, entry.get("type", "file")))
        return out

    def invalidate(self) -> None:
        """Forget any cached listings (remote filesystems cache them)."""
        self.fs.invalidate_cache()

    def list_models(self) -> list[str]:
        """Every folder under the root with a valid model name, sorted."""
        return sorted(
            b for b, t in self._children(self.root) if t == "directory" and is_model_name(b)
        )

    def list_versions(self, name: str, *, complete_only: bool = True) -> list[int]:
        """Integer version folders of ``name``, ascending; with ``complete_only``, those with a manifest."""
        versions = []
        for base, kind in self._children(self.model_path(name)):
            version = parse_version(base)
            if version is None or kind != "directory":
                continue
            if complete_only and not self.fs.exists(
                f"{self.model_path(name)}/{base}/{MANIFEST_NAME}"
            ):
                continue
            versions.append(version)
        return sorted(versions)

    def latest_version(self, name: str) -> int | None:
        versions = self.list_versions(name)
        return versions[-1] if versions else None

    def has_model(self, name: str) -> bool:
        return self.fs.isdir(self.model_path(name))

    def read_manifest(self, name: str, version: int) -> Manifest:
        path = f"{self.version_path(name, version)}/{MANIFEST_NAME}"
        try:
            text = self.fs.cat_file(path).decode()
        except FileNotFoundError:
            raise NotFound(f"model {name!r} has no version {version}") from None
        return Manifest.from_yaml(text, source=path)

    def has_manifest(self, name: str, version: int) -> bool:
        return bool(self.fs.exists(f"{self.version_path(name, version)}/{MANIFEST_NAME}"))

    # -- reading --------------------------------------------------------------
    def local_dir(self, name: str, version: int) -> Path:
        """A local folder holding the version's files (the folder itself for a local store)."""
        remote = self.version_path(name, version)
        if self.is_local:
            path = Path(remote)
            if not path.is_dir():
                raise NotFound(f"model {name!r} has no version {version}")
            return path
        target = self.cache_dir / name / str(version)
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        try:
            if not self.fs.isdir(remote):
                raise NotFound(f"model {name!r} has no version {version}")
            self.fs.get(remote + "/", str(tmp) + "/", recursive=True)
            os.rename(tmp, target)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if target.is_dir():  # another thread finished the same download first
                return target
            raise StoreError(f"cannot download {remote}: {exc}") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    # -- publishing -------------------------------------------------------------
    @contextlib.contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        """An empty local folder to write a new version into; removed if not published."""
        check_model_name(name)
        if self.is_local:
            parent = Path(self.model_path(name))
            parent.mkdir(parents=True, exist_ok=True)
            path = parent / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
            path.mkdir()
        else:
            path = Path(tempfile.mkdtemp(prefix="modelcore-staging-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def publish(
        self, name: str, staged: Path, manifest: Manifest, version: int | None = None
    ) -> int:
        """Publish the ``staged`` folder as ``version`` (or the next free one); return it.

        The manifest is written last. An existing version is never overwritten.
        """
        check_model_name(name)
        if version is not None:
            check_version(version)
        candidate = 0
        for _attempt in range(100):
            candidate = version if version is not None else max(self._highest(name), candidate) + 1
            manifest.version = candidate
            manifest.name = name
            try:
                if self.is_local:
                    self._publish_local(name, staged, manifest, candidate)
                else:
                    self._publish_remote(name, staged, manifest, candidate)
                return candidate
            except _Taken:
                if version is not None:
                    raise Conflict(
                        f"model {name!r} version {version} exists already; "
                        "versions are immutable, deploy a new one"
                    ) from None
        raise StoreError(f"could not find a free version number for {name!r}")

    def _highest(self, name: str) -> int:
        """The highest number taken by any entry (complete, incomplete, even a stray file)."""
        taken = [
            v
            for base, _ in self._children(self.model_path(name))
            if (v := parse_version(base)) is not None
        ]
        return max(taken, default=0)

    def _publish_local(self, name: str, staged: Path, manifest: Manifest, version: int) -> None:
        target = Path(self.version_path(name, version))
        if target.exists():
            raise _Taken()
        manifest.write(staged)
        try:
            os.rename(staged, target)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                (staged / MANIFEST_NAME).unlink(missing_ok=True)
                raise _Taken() from None
            raise StoreError(f"cannot publish {target}: {exc}") from exc

    def _publish_remote(self, name: str, staged: Path, manifest: Manifest, version: int) -> None:
        target = self.version_path(name, version)
        self.invalidate()
        if self.fs.exists(target):
            raise _Taken()
        for path in sorted(p for p in staged.rglob("*") if p.is_file()):
            rel = path.relative_to(staged).as_posix()
            if rel != MANIFEST_NAME:
                self.fs.put_file(str(path), f"{target}/{rel}")
        self.fs.pipe_file(f"{target}/{MANIFEST_NAME}", manifest.to_yaml().encode())
        self.invalidate()


class _Taken(Exception):
    """The version folder exists already."""


def open_store(
    store: str | os.PathLike[str] | ModelStore, storage_options: dict[str, Any] | None = None
) -> ModelStore:
    """A :class:`ModelStore` for a path, URL, or an existing store (returned as is)."""
    if isinstance(store, ModelStore):
        return store
    return ModelStore(store, storage_options)
