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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from modelcore.errors import Conflict, NotFound, StoreError
from modelcore.manifest import MANIFEST_NAME, Manifest
from modelcore.store.cache import DiskCache
from modelcore.store.layout import check_model_name, check_version, is_model_name, parse_version

STAGING_PREFIX = ".staging-"


class ModelStore:
    """A model store rooted at a local path or an fsspec URL (``s3://bucket/prefix``)."""

    def __init__(
        self,
        url: str | os.PathLike[str],
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_scope: str = "",
    ):
        """``cache_scope`` separates the disk caches of stores on one URL (each API its own limit)."""
        self.url = str(url)
        self.storage_options = dict(storage_options or {})
        try:
            fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        except (ImportError, ValueError) as exc:
            raise StoreError(f"cannot open store {self.url!r}: {exc}") from exc
        self.fs: fsspec.AbstractFileSystem = fs
        self.is_local = isinstance(fs, LocalFileSystem)
        self.root = root.rstrip("/") if not self.is_local else str(Path(root).resolve())
        scoped = self.url + (f"\0{cache_scope}" if cache_scope else "")
        digest = hashlib.sha256(scoped.encode()).hexdigest()[:16]
        self.cache_dir = (
            Path(cache_dir)
            if cache_dir
            else (
                Path(os.environ.get("MODELCORE_CACHE", Path.home() / ".cache" / "modelcore"))
                / digest
            )
        )
        self.disk_cache = DiskCache(self.cache_dir)
        self._flat: dict[str, bool] = {}

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
        """Integer version folders of ``name``, ascending; with ``complete_only``, those with a manifest.

        Without ``complete_only``, a model folder holding files but no integer
        folders is version 1 (as in Cortex).
        """
        versions = []
        children = self._children(self.model_path(name))
        for base, kind in children:
            version = parse_version(base)
            if version is None or kind != "directory":
                continue
            if complete_only and not self.fs.exists(
                f"{self.model_path(name)}/{base}/{MANIFEST_NAME}"
            ):
                continue
            versions.append(version)
        if not complete_only and not any(parse_version(b) is not None for b, _ in children):
            self._flat[name] = any(not b.startswith(".") for b, _ in children)
            return [1] if self._flat[name] else []
        self._flat[name] = False
        return sorted(versions)

    def snapshot(self, name: str, *, complete_only: bool = True) -> dict[int, str]:
        """Every version of ``name`` with a fingerprint of its files, from one listing.

        The fingerprint covers each file's path, size and ETag or modification
        time, so a version restructured or rewritten in place gets a new one.
        With ``complete_only`` a version folder without a manifest is left out;
        without it, a model folder with files but no integer folders is version 1.
        """
        base = self.model_path(name)
        per_version: dict[int, list[tuple[str, int, str]]] = {}
        flat: list[tuple[str, int, str]] = []
        for rel, size, stamp in self._files_under(base):
            head, _, rest = rel.partition("/")
            version = parse_version(head)
            if version is not None and rest:
                per_version.setdefault(version, []).append((rest, size, stamp))
            elif version is None and not head.startswith("."):
                flat.append((rel, size, stamp))
        if complete_only:
            per_version = {
                v: f for v, f in per_version.items() if any(r == MANIFEST_NAME for r, _, _ in f)
            }
        self._flat[name] = not per_version and not complete_only and bool(flat)
        if self._flat[name]:
            per_version = {1: flat}
        return {v: _fingerprint(files) for v, files in sorted(per_version.items())}

    def _files_under(self, base: str) -> list[tuple[str, int, str]]:
        """(relative path, size, stamp) of every file under ``base``; [] when it does not exist."""
        out = []
        if self.is_local:
            root = Path(base)
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = [d for d in dirnames if not d.startswith(STAGING_PREFIX)]
                for fname in filenames:
                    full = os.path.join(dirpath, fname)
                    try:
                        st = os.stat(full)
                    except OSError:
                        continue  # removed while we walked
                    rel = os.path.relpath(full, root).replace(os.sep, "/")
                    out.append((rel, st.st_size, str(st.st_mtime_ns)))
            return out
        try:
            entries = self.fs.find(base, detail=True, withdirs=False)
        except FileNotFoundError:
            return []
        prefix = base.rstrip("/") + "/"
        for path, info in entries.items():
            path = "/" + path.lstrip("/") if prefix.startswith("/") else path
            if not path.startswith(prefix):
                continue
            stamp = (
                info.get("ETag")
                or info.get("LastModified")
                or info.get("mtime")
                or info.get("created")
            )
            out.append((path[len(prefix) :], int(info.get("size") or 0), str(stamp or "")))
        return out

    def version_dir(self, name: str, version: int) -> str:
        """Where a version's files are: its folder, or the model folder of a flat model."""
        path = self.version_path(name, version)
        if version == 1 and name not in self._flat:
            self.list_versions(name, complete_only=False)
        if version == 1 and self._flat.get(name):
            return self.model_path(name)
        return path

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
    def local_dir(
        self, name: str, version: int, fingerprint: str | None = None, *, pin: bool = False
    ) -> Path:
        """A local folder holding the version's files (the folder itself for a local store).

        A remote version is downloaded into the disk cache first, under its
        fingerprint, so a rewritten version is never mixed with its old files.
        With ``pin``, the download stays in the cache until ``disk_cache.unpin``.
        """
        remote = self.version_dir(name, version)
        if self.is_local:
            path = Path(remote)
            if not path.is_dir():
                raise NotFound(f"model {name!r} has no version {version}")
            return path
        if fingerprint is None:
            fingerprint = self.snapshot(name, complete_only=False).get(version)
            if fingerprint is None:
                raise NotFound(f"model {name!r} has no version {version}")
        target = self.disk_cache.entry(name, version, fingerprint)
        if self.disk_cache.lookup(target, pin=pin):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        flat = remote == self.model_path(name)
        try:
            for rel, _size, _stamp in self._files_under(remote):
                if rel.startswith(".") or (
                    flat and parse_version(rel.partition("/")[0]) is not None
                ):
                    continue
                dest = _inside(tmp, rel, remote)
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(f"{remote}/{rel}", str(dest))
            os.rename(tmp, target)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if self.disk_cache.lookup(target, pin=pin):  # another thread downloaded it first
                return target
            raise StoreError(f"cannot download {remote}: {exc}") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.disk_cache.added(target, pin=pin)
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
        self,
        name: str,
        staged: Path,
        manifest: Manifest,
        version: int | None = None,
        sign: Callable[[Manifest], str] | None = None,
    ) -> int:
        """Publish the ``staged`` folder as ``version`` (or the next free one); return it.

        The manifest is written last. An existing version is never overwritten.
        ``sign`` makes the manifest's signature once its name and version are final.
        """
        check_model_name(name)
        if version is not None:
            check_version(version)
        candidate = 0
        for _attempt in range(100):
            candidate = version if version is not None else max(self._highest(name), candidate) + 1
            manifest.version = candidate
            manifest.name = name
            if sign is not None:
                manifest.signature = sign(manifest)
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


def _inside(root: Path, rel: str, remote: str) -> Path:
    """``root / rel``, refusing an object key that would land outside ``root`` (``a/../../x``)."""
    parts = rel.split("/")
    dest = (root / rel).resolve()
    if rel.startswith("/") or ".." in parts or not dest.is_relative_to(root.resolve()):
        raise StoreError(f"refusing to download {remote}/{rel}: the key leaves its version folder")
    return dest


def _fingerprint(files: list[tuple[str, int, str]]) -> str:
    digest = hashlib.sha256()
    for rel, size, stamp in sorted(files):
        digest.update(f"{rel}\0{size}\0{stamp}\n".encode())
    return digest.hexdigest()


class _Taken(Exception):
    """The version folder exists already."""


def open_store(
    store: str | os.PathLike[str] | ModelStore, storage_options: dict[str, Any] | None = None
) -> ModelStore:
    """A :class:`ModelStore` for a path, URL, or an existing store (returned as is)."""
    if isinstance(store, ModelStore):
        return store
    return ModelStore(store, storage_options)
