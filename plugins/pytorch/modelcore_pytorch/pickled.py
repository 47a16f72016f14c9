"""The ``pickled-module`` format: Clipper's state dict plus the cloudpickled module.

The weights go to ``state_dict.pt`` (``torch.save``), read back with
``torch.load(weights_only=True)``, which unpickles nothing but tensors. The
module goes to ``module.pkl`` with cloudpickle, but every tensor in it is
written as a reference: to the state dict, or, for tensors outside it
(non-persistent buffers, plain tensor attributes), to ``extra_tensors.pt``.
So the weights are stored once, always on the CPU, and every tensor is read
by the safe loader. Loading ``module.pkl`` still runs code from the file:
only load versions from a store you trust.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import cloudpickle

from modelcore.errors import StoreError

MODULE_FILE = "module.pkl"
STATE_FILE = "state_dict.pt"
EXTRA_FILE = "extra_tensors.pt"
_STATE = "modelcore-state-dict"  # the tags of references, by the file that holds the tensor
_EXTRA = "modelcore-extra-tensors"


Ref = tuple[str, str, bool, bool]
"""A tensor written by reference: (tag, key, is a Parameter, requires_grad)."""


class _ModulePickler(cloudpickle.Pickler):
    """Cloudpickle, writing each plain tensor as a reference instead of its data."""

    def __init__(self, file: io.BytesIO, refs: dict[int, Ref]):
        import torch

        super().__init__(file)
        self._refs = refs
        self._plain = (torch.Tensor, torch.nn.Parameter)
        self._alive: list[Any] = []  # ids are the keys: no tensor may be freed and its id reused
        self.extra: dict[str, Any] = {}

    def persistent_id(self, obj: Any) -> Ref | None:
        ref = self._refs.get(id(obj))
        if ref is None and type(obj) in self._plain:  # subclasses keep their own reducers
            key = str(len(self.extra))
            self.extra[key] = obj.detach().cpu()
            self._alive.append(obj)
            ref = self._refs[id(obj)] = _ref(_EXTRA, obj, key)
        return ref


class _ModuleUnpickler(pickle.Unpickler):
    """Rebuilds the module, taking each referenced tensor from the loaded state dict."""

    def __init__(self, file: io.BufferedReader, tensors: dict[str, dict[str, Any]]):
        super().__init__(file)
        self._tensors = tensors
        self._made: dict[tuple[str, str], Any] = {}  # tied weights stay one object

    def persistent_load(self, pid: Any) -> Any:
        import torch

        if not (isinstance(pid, tuple) and len(pid) == 4 and pid[0] in self._tensors):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        tag, key, is_param, requires_grad = pid
        if (tag, key) not in self._made:
            tensor = self._tensors[tag][key]
            self._made[tag, key] = (
                torch.nn.Parameter(tensor, requires_grad=requires_grad) if is_param else tensor
            )
        return self._made[tag, key]


def save_pickled(module: Any, directory: Path) -> dict[str, Any]:
    """Write ``state_dict.pt`` and ``module.pkl``; return facts for the manifest."""
    import torch

    state: dict[str, Any] = {}
    refs: dict[int, Ref] = {}
    live = module.state_dict(keep_vars=True)  # held until pickled: its ids are the keys
    for name, value in live.items():
        if not isinstance(value, torch.Tensor):
            continue  # extra state: it stays in the pickle, weights_only cannot read it
        state[name] = value.detach().cpu()
        refs.setdefault(id(value), _ref(_STATE, value, name))  # tied weights: the first name
    buffer = io.BytesIO()
    pickler = _ModulePickler(buffer, refs)
    try:
        pickler.dump(module)
    except Exception as exc:
        raise StoreError(
            f"cannot pickle the module ({type(module).__name__}) with cloudpickle: "
            f"{type(exc).__name__}: {exc}",
            cause=type(exc).__name__,
        ) from exc
    torch.save(state, directory / STATE_FILE)
    if pickler.extra:
        torch.save(pickler.extra, directory / EXTRA_FILE)
    (directory / MODULE_FILE).write_bytes(buffer.getvalue())
    return {"state_dict_keys": len(state), "extra_tensors": len(pickler.extra)}


def load_pickled(directory: Path, device: Any) -> Any:
    """Read the state dict (tensors only), then unpickle the module around it, on ``device``."""
    import torch

    tensors = {_STATE: torch.load(directory / STATE_FILE, map_location=device, weights_only=True)}
    if (directory / EXTRA_FILE).exists():
        extra = torch.load(directory / EXTRA_FILE, map_location=device, weights_only=True)
        tensors[_EXTRA] = extra
    path = directory / MODULE_FILE
    try:
        with open(path, "rb") as fh:
            module = _ModuleUnpickler(fh, tensors).load()
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"{path}: the module's class needs the module {exc.name!r}, which is not installed "
            "here; install it where the model is served (pkgs_to_install=[...]), or deploy "
            "a model that torch.jit.script or torch.export can save",
            cause=str(exc),
        ) from exc
    except Exception as exc:
        raise StoreError(
            f"{path}: cannot unpickle the module", cause=f"{type(exc).__name__}: {exc}"
        ) from exc
    return module.to(device)  # tensor subclasses were pickled inline, where they were


def _ref(tag: str, tensor: Any, key: str) -> Ref:
    import torch

    return (tag, key, isinstance(tensor, torch.nn.Parameter), bool(tensor.requires_grad))
