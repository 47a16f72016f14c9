"""How a module is written to a version folder and read back, in each supported format.

``torchscript`` (``model.pt``) and ``torch-export`` (``model.pt2``) reload
without the user's class being importable; ``pickled-module`` (see
:mod:`modelcore_pytorch.pickled`) is the fallback for modules that neither
``torch.jit.script`` nor ``torch.export`` can capture.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelcore.errors import StoreError
from modelcore.types import SaveResult
from modelcore_pytorch import pickled

TORCHSCRIPT = "torchscript"
TORCH_EXPORT = "torch-export"
PICKLED_MODULE = "pickled-module"
FORMATS = (TORCHSCRIPT, TORCH_EXPORT, PICKLED_MODULE)

SCRIPT_FILE = "model.pt"
EXPORT_FILE = "model.pt2"
FILES = {
    TORCHSCRIPT: (SCRIPT_FILE,),
    TORCH_EXPORT: (EXPORT_FILE,),
    PICKLED_MODULE: (pickled.MODULE_FILE, pickled.STATE_FILE, pickled.EXTRA_FILE),
}
OPTIONS = ("example_inputs", "save_format")

TorchLoaded = tuple[Any, Any]
"""A loaded module and, for ``torch-export``, its ``ExportedProgram``."""


# -- saving -------------------------------------------------------------------------
def save_model(directory: Path, model: Any, options: dict[str, Any]) -> SaveResult:
    """Save ``model`` in the first format that captures it (or the one ``save_format`` names)."""
    import torch

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise StoreError(
            f"unknown pytorch deploy option(s) {', '.join(unknown)} (known: {', '.join(OPTIONS)})"
        )
    wanted = options.get("save_format") or "auto"
    if wanted != "auto" and wanted not in FORMATS:
        raise StoreError(f"unknown save_format {wanted!r} (known: auto, {', '.join(FORMATS)})")
    meta: dict[str, Any] = {"model_class": _qualname(model)}
    if isinstance(model, torch.export.ExportedProgram):
        _require(wanted, TORCH_EXPORT, model)
        torch.export.save(model, directory / EXPORT_FILE)
        return SaveResult(format=TORCH_EXPORT, metadata=meta)
    if not isinstance(model, torch.nn.Module):
        raise StoreError(
            f"the pytorch backend saves torch.nn.Module objects, not {_qualname(model)}"
        )
    if isinstance(model, torch.jit.ScriptModule):
        _require(wanted, TORCHSCRIPT, model)
        torch.jit.save(model, str(directory / SCRIPT_FILE))
        return SaveResult(format=TORCHSCRIPT, metadata=meta)
    example = _example_inputs(options.get("example_inputs"), model)
    if wanted != "auto":
        order = [wanted]
    else:
        order = ([TORCH_EXPORT] if example is not None else []) + [TORCHSCRIPT, PICKLED_MODULE]
    failures: dict[str, str] = {}
    modes = [(sub, sub.training) for sub in model.modules()]
    model.eval()  # capture what serving runs: no dropout, batch norm on running statistics
    try:
        for fmt in order:
            try:
                meta.update(_SAVERS[fmt](model, directory, example))
            except Exception as exc:
                _remove(directory, fmt)
                if len(order) == 1 or fmt == PICKLED_MODULE:
                    if isinstance(exc, StoreError):
                        raise
                    raise StoreError(
                        f"cannot save {_qualname(model)} as {fmt}: {_short(exc)}",
                        cause=type(exc).__name__,
                    ) from exc
                failures[fmt] = _short(exc)
                continue
            if failures:
                meta["not_saved_as"] = failures  # why a preferred format was not used
            return SaveResult(format=fmt, metadata=meta)
    finally:
        for sub, training in modes:  # each submodule as it was (a frozen one stays frozen)
            sub.training = training
    raise AssertionError("unreachable: the last format raises or returns")


def _save_script(model: Any, directory: Path, example: tuple[Any, ...] | None) -> dict[str, Any]:
    import torch

    scripted = torch.jit.script(model)
    if example is not None:
        _check_same(model, scripted, example)
    torch.jit.save(scripted, str(directory / SCRIPT_FILE))
    return {}


def _save_export(model: Any, directory: Path, example: tuple[Any, ...] | None) -> dict[str, Any]:
    import torch

    if example is None:
        raise ValueError("torch.export needs example_inputs=... (a batch of example inputs)")
    # A batch of one is specialised to 1 by torch.export; two rows keep the batch size free.
    args = tuple(
        torch.cat([x, x]) if isinstance(x, torch.Tensor) and x.ndim and x.shape[0] == 1 else x
        for x in example
    )
    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} if isinstance(x, torch.Tensor) and x.ndim else None for x in args)
    program = torch.export.export(model, args, dynamic_shapes=dynamic)
    _check_same(model, program.module(), example)
    torch.export.save(program, directory / EXPORT_FILE)
    shapes = [list(x.shape[1:]) for x in args if isinstance(x, torch.Tensor)]
    return {"input_shapes": shapes}  # per input, without the batch dimension


def _save_pickled(model: Any, directory: Path, example: tuple[Any, ...] | None) -> dict[str, Any]:
    return pickled.save_pickled(model, directory)


_SAVERS: dict[str, Callable[[Any, Path, tuple[Any, ...] | None], dict[str, Any]]] = {
    TORCHSCRIPT: _save_script,
    TORCH_EXPORT: _save_export,
    PICKLED_MODULE: _save_pickled,
}


def _check_same(original: Any, captured: Any, example: tuple[Any, ...]) -> None:
    """Refuse a captured module that does not answer the example inputs as the original does."""
    import torch

    with torch.no_grad():
        expected = original(*example)
        actual = captured(*example)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def _example_inputs(value: Any, model: Any) -> tuple[Any, ...] | None:
    """``example_inputs`` as a tuple of forward's arguments; numpy arrays become tensors."""
    if value is None:
        return None
    import torch

    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    converted = []
    for item in items:
        if isinstance(item, np.ndarray):
            tensor = torch.from_numpy(item)
            item = tensor.to(device, dtype) if tensor.is_floating_point() else tensor.to(device)
        converted.append(item)
    return tuple(converted)


def _require(wanted: str, fmt: str, model: Any) -> None:
    if wanted not in ("auto", fmt):
        raise StoreError(f"a {_qualname(model)} is saved as {fmt}; it cannot be saved as {wanted}")


def _remove(directory: Path, fmt: str) -> None:
    for name in FILES[fmt]:
        (directory / name).unlink(missing_ok=True)


# -- loading ------------------------------------------------------------------------
def load_module(directory: Path, fmt: str, device: Any, path: Path | None = None) -> TorchLoaded:
    """Read a version saved as ``fmt`` straight onto ``device``, in eval mode."""
    import torch

    if fmt == TORCHSCRIPT:
        module = torch.jit.load(str(path or directory / SCRIPT_FILE), map_location=device)
        return module.eval(), None
    if fmt == TORCH_EXPORT:
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(torch.export.load(path or directory / EXPORT_FILE), device)
        # Exported graphs were captured in eval mode and refuse .eval().
        return program.module(), program
    if fmt == PICKLED_MODULE:
        return pickled.load_pickled(directory, device).eval(), None
    raise StoreError(
        f"{directory}: unknown pytorch format {fmt!r} (this plugin reads {', '.join(FORMATS)})"
    )


_BARE_NAMES = ("model.pt2", "model.pt", "model.pth", "model.ts")
_BARE_SUFFIXES = (".pt2", ".pt", ".pth", ".ts")


def find_bare_artifact(directory: Path) -> tuple[str, Path]:
    """The format and file of a manifest-less folder: a TorchScript file or a torch.export program.

    ``model.pt2`` / ``model.pt`` / ``model.pth`` / ``model.ts`` in that order,
    else the only file with one of those suffixes. ``.pt2`` is read with
    ``torch.export.load``, the others with ``torch.jit.load``.
    """
    for name in _BARE_NAMES:
        if (directory / name).is_file():
            return _bare_format(directory / name), directory / name
    found = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in _BARE_SUFFIXES)
    if len(found) == 1:
        return _bare_format(found[0]), found[0]
    listed = ", ".join(p.name for p in sorted(directory.iterdir())) or "nothing"
    raise StoreError(
        f"{directory}: no modelcore.yaml, and no single TorchScript (model.pt) or torch.export "
        f"(model.pt2) file to serve; found {listed}"
    )


def load_bare(path: Path, fmt: str, device: Any) -> TorchLoaded:
    """Load a manifest-less artifact, saying what it must be when it is something else."""
    try:
        return load_module(path.parent, fmt, device, path)
    except Exception as exc:
        wanted = "a torch.export program (torch.export.save)"
        if fmt == TORCHSCRIPT:
            wanted = "a TorchScript archive (torch.jit.save)"
        raise StoreError(
            f"{path}: cannot load it as {wanted}; a state dict or a pickled module (torch.save) "
            "needs its Python class: deploy it with modelcore_pytorch.deploy_pytorch_model",
            cause=_short(exc),
        ) from exc


def _bare_format(path: Path) -> str:
    return TORCH_EXPORT if path.suffix == ".pt2" else TORCHSCRIPT


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."
