"""Saving and loading predict functions with cloudpickle, for every backend.

A cloudpickled closure carries Python bytecode, which is not portable across
Python minor versions, and cloudpickle's format changes across major
versions. Loading across either boundary fails in confusing ways deep inside
pickle, so it is refused up front with both versions named.
"""

from __future__ import annotations

import os
import platform
import site
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import cloudpickle

from modelcore.errors import IncompatibleArtifact, StoreError

if TYPE_CHECKING:
    from modelcore.manifest import Manifest

FUNC_FILE = "func.pkl"


def save_function(func: Callable[..., Any], directory: str | Path) -> Path:
    """Cloudpickle ``func`` (with the state it closes over) into ``directory/func.pkl``."""
    if not callable(func):
        raise StoreError(f"the predict function must be callable, got {type(func).__name__}")
    path = Path(directory) / FUNC_FILE
    own = _user_module(func)
    try:
        if own is not None:
            # The user's own module (a script, a notebook helper, a test file) is saved with
            # the function: the server has no copy of it to import by name.
            cloudpickle.register_pickle_by_value(own)
        data = cloudpickle.dumps(func)
    except Exception as exc:
        raise StoreError(
            "the predict function cannot be pickled with cloudpickle; state from C "
            "extensions (framework models) must be passed as `model=` instead",
            cause=f"{type(exc).__name__}: {exc}",
        ) from exc
    finally:
        if own is not None:
            cloudpickle.unregister_pickle_by_value(own)
    path.write_bytes(data)
    return path


def _user_module(func: Callable[..., Any]) -> ModuleType | None:
    """The module ``func`` comes from, when it is the user's code rather than an installed package.

    cloudpickle saves functions of importable modules by reference: the server
    would have to import that module by name, and a user's script or test file
    is not there. Installed packages (site-packages) and the standard library
    are left by reference.
    """
    name: str | None = getattr(func, "__module__", None)
    if not name or name == "__main__" or name in sys.stdlib_module_names:
        return None
    module = sys.modules.get(name)
    if module is None:
        return None
    file = getattr(module, "__file__", None)
    if not file:
        return None
    resolved = os.path.realpath(file)
    installed = {
        os.path.realpath(p)
        for p in (
            *site.getsitepackages(),
            site.getusersitepackages(),
            sysconfig.get_paths()["stdlib"],
        )
    }
    if any(resolved.startswith(prefix + os.sep) for prefix in installed):
        return None
    if name.split(".")[0] in ("modelcore",) or name.startswith("modelcore_"):
        return None
    return module


def check_compatible(manifest: Manifest) -> None:
    """Refuse a pickled function written by another Python minor or cloudpickle major version."""
    here_py = platform.python_version()
    if manifest.python_version and _minor(manifest.python_version) != _minor(here_py):
        raise IncompatibleArtifact(
            f"{manifest.name} v{manifest.version}: the function was pickled by Python "
            f"{manifest.python_version}, and this server runs Python {here_py}; "
            f"closures only load on the same Python minor version "
            f"({_minor(manifest.python_version)}). Redeploy it from Python {_minor(here_py)}, "
            f"or serve it from an environment with Python {_minor(manifest.python_version)}."
        )
    here_cp = cloudpickle.__version__
    if manifest.cloudpickle_version and _major(manifest.cloudpickle_version) != _major(here_cp):
        raise IncompatibleArtifact(
            f"{manifest.name} v{manifest.version}: the function was pickled by cloudpickle "
            f"{manifest.cloudpickle_version}, and this server has cloudpickle {here_cp}; "
            f"pickles only load on the same cloudpickle major version. Install "
            f"cloudpickle=={manifest.cloudpickle_version} or redeploy the model."
        )


def load_function(directory: str | Path, manifest: Manifest | None = None) -> Callable[..., Any]:
    """Load ``func.pkl`` from ``directory`` after checking the versions that wrote it.

    Unpickling runs code from the artifact: only load versions you trust.
    """
    if manifest is not None:
        check_compatible(manifest)
    path = Path(directory) / FUNC_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise StoreError(f"{path}: no pickled function in this version") from exc
    try:
        func = cloudpickle.loads(data)
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"{path}: the function needs the module {exc.name!r}, which is not installed here; "
            "deploy it with pkgs_to_install=[...] or install it in the server's environment",
            cause=str(exc),
        ) from exc
    except Exception as exc:
        raise StoreError(
            f"{path}: cannot unpickle the function", cause=f"{type(exc).__name__}: {exc}"
        ) from exc
    if not callable(func):
        raise StoreError(f"{path}: the pickled object is a {type(func).__name__}, not a function")
    return func


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _major(version: str) -> str:
    return version.split(".")[0]
