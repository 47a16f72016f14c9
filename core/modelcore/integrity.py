"""Artifact integrity: a version's files against its manifest, and the manifest's signature.

A cloudpickled function is code, so what a server loads must be what was
deployed. Every file of a version is checked against the sha256 its manifest
records; with a signing key, deploy also writes an HMAC of the manifest, and a
server that requires signatures refuses any version without a valid one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelcore.errors import IntegrityError
from modelcore.manifest import MANIFEST_NAME, Manifest, sha256_file

SIGNING_KEY_ENV = "MODELCORE_SIGNING_KEY"
SCHEME = "hmac-sha256"


def signing_key_from_env() -> bytes | None:
    """The signing key in ``MODELCORE_SIGNING_KEY`` (UTF-8 encoded), or None when unset or empty."""
    value = os.environ.get(SIGNING_KEY_ENV)
    return value.encode() if value else None


def as_key(key: bytes | str) -> bytes:
    """A key given as text or bytes, as bytes."""
    return key.encode() if isinstance(key, str) else key


def canonical_bytes(manifest: Manifest) -> bytes:
    """What is signed: the manifest as compact, key-sorted JSON, without its signature."""
    data = manifest.model_dump(mode="json", exclude={"signature"})
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def sign_manifest(manifest: Manifest, key: bytes) -> str:
    """The signature of ``manifest`` under ``key``: ``"hmac-sha256:<hex>"``."""
    digest = hmac.new(as_key(key), canonical_bytes(manifest), hashlib.sha256).hexdigest()
    return f"{SCHEME}:{digest}"


def check_signature(manifest: Manifest, key: bytes) -> None:
    """Raise :class:`IntegrityError` unless ``manifest`` carries a valid signature under ``key``."""
    signature = manifest.signature
    if not signature:
        raise IntegrityError("unsigned version: the manifest has no signature")
    scheme, _, _ = signature.partition(":")
    if scheme != SCHEME:
        raise IntegrityError(
            f"unsigned version: unknown signature scheme {scheme!r} (expected {SCHEME})"
        )
    if not hmac.compare_digest(signature.encode(), sign_manifest(manifest, key).encode()):
        raise IntegrityError(
            "bad signature: the manifest was signed with another key or edited after signing"
        )


def verify_files(directory: str | os.PathLike[str], manifest: Manifest) -> None:
    """Raise :class:`IntegrityError` naming the first file that differs from ``manifest``.

    A file is bad when it is missing, has another size or another sha256, or
    is on disk but not in the manifest (the manifest itself and hidden files
    excepted). Sizes and listings are checked before any file is hashed.
    """
    root = Path(directory)
    listed: dict[str, tuple[int, str]] = {}
    for entry in manifest.files:
        parts = PurePosixPath(entry.path)
        if parts.is_absolute() or ".." in parts.parts or not parts.parts:
            raise _bad(entry.path, "is outside the version folder (listed in the manifest)")
        listed[parts.as_posix()] = (entry.size, entry.sha256)
    for rel, (size, _sha) in listed.items():
        path = root / rel
        if not path.is_file():
            raise _bad(rel, "is missing (listed in the manifest)")
        actual = path.stat().st_size
        if actual != size:
            raise _bad(rel, f"has {actual} bytes, the manifest says {size}")
    for rel in _unhidden_files(root):
        if rel != MANIFEST_NAME and rel not in listed:
            raise _bad(rel, "is not listed in the manifest")
    for rel, (_size, expected) in listed.items():
        actual_sha = sha256_file(root / rel)
        if actual_sha != expected.lower():
            raise _bad(rel, f"has sha256 {actual_sha[:12]}…, the manifest says {expected[:12]}…")


def _bad(rel: str, why: str) -> IntegrityError:
    return IntegrityError(f"integrity check failed: {rel} {why}")


def _unhidden_files(root: Path) -> list[str]:
    """Relative POSIX paths of the files under ``root``, skipping hidden files and folders."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                out.append(rel.replace(os.sep, "/"))
    return sorted(out)


@dataclass(frozen=True)
class IntegrityPolicy:
    """What a server checks before it loads a version (from ``server.verify_hashes`` / ``require_signed``).

    ``require_signed`` implies the hash check: a signature vouches for the
    manifest, and only the hashes tie the files to it.
    """

    verify_hashes: bool = True
    require_signed: bool = False
    key: bytes | None = None

    def check_manifest(self, manifest: Manifest | None) -> None:
        """The signature part alone: run it before anything acts on the manifest.

        A manifest's ``pkgs_to_install`` builds an environment; an unsigned or
        forged one must be refused before that, not after.
        """
        if not self.require_signed:
            return
        if manifest is None:
            raise IntegrityError(
                "unsigned version: no manifest (the server requires signed versions)"
            )
        if self.key is None:
            raise IntegrityError(
                f"the server requires signed versions but {SIGNING_KEY_ENV} is not set"
            )
        check_signature(manifest, self.key)

    def check(self, directory: str | os.PathLike[str], manifest: Manifest | None) -> None:
        """Raise :class:`IntegrityError` when the version in ``directory`` must not be loaded."""
        if manifest is None:
            if self.require_signed:
                raise IntegrityError(
                    "unsigned version: no manifest (the server requires signed versions)"
                )
            return  # a bare version: nothing to check the files against
        if self.require_signed:
            if self.key is None:
                raise IntegrityError(
                    f"the server requires signed versions but {SIGNING_KEY_ENV} is not set"
                )
            check_signature(manifest, self.key)
        if self.verify_hashes or self.require_signed:
            verify_files(directory, manifest)
