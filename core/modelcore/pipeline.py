"""Pipelines: steps built once from the spec, each step's outputs the next one's inputs.

A request's list of inputs flows through the steps as a list. A model step
submits it to that model's batcher like any request, so concurrent requests
batch at every model step; a Python step runs in the API's thread pool; an
ensemble sends the same list to several models at once and combines each
input's answers; a split sends each request down one branch, chosen by its
key when it has one (the same key always takes the same branch).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from modelcore.errors import ModelcoreError, PredictionError
from modelcore.runtime import ModelManager
from modelcore.runtime.handler import load_object
from modelcore.runtime.slots import VersionRef
from modelcore.spec import (
    EnsembleStep,
    LoadedSpec,
    ModelRef,
    ModelStep,
    PythonCombine,
    PythonStep,
    SplitStep,
    Step,
)


class StepFailed(ModelcoreError):
    """A step failed; the message names the API and the step, the status is the step's own."""


class Runner:
    """One step, ready to run."""

    label = "step"

    async def run(self, inputs: list[Any], key: str | None) -> list[Any]:
        raise NotImplementedError

    def models(self) -> list[tuple[str, VersionRef]]:
        return []


class ModelRunner(Runner):
    def __init__(self, manager: ModelManager, model: str, version: VersionRef):
        self.manager = manager
        self.model = model
        self.version = version
        self.label = f"model {model!r}" + (f" v{version}" if version != "latest" else "")

    async def run(self, inputs: list[Any], key: str | None) -> list[Any]:
        lv = await self.manager.resolve(self.model, self.version)
        # submit() holds the version at once: nothing may suspend between resolve and submit.
        return await asyncio.shield(self.manager.submit(lv, inputs))

    def models(self) -> list[tuple[str, VersionRef]]:
        return [(self.model, self.version)]


class PythonRunner(Runner):
    def __init__(
        self, fn: Callable[[list[Any]], list[Any]], ref: str, executor: ThreadPoolExecutor
    ):
        self.fn = fn
        self.executor = executor
        self.label = f"python {ref}"

    async def run(self, inputs: list[Any], key: str | None) -> list[Any]:
        outputs = await asyncio.get_running_loop().run_in_executor(self.executor, self.fn, inputs)
        return same_length(self.label, inputs, outputs)


class EnsembleRunner(Runner):
    def __init__(
        self,
        members: list[ModelRunner],
        combine: Callable[[list[list[Any]]], list[Any]],
        how: str,
        executor: ThreadPoolExecutor,
    ):
        self.members = members
        self.combine = combine
        self.executor = executor
        self.label = f"ensemble of {', '.join(m.model for m in members)} ({how})"

    async def run(self, inputs: list[Any], key: str | None) -> list[Any]:
        answers = await asyncio.gather(*(m.run(inputs, key) for m in self.members))
        # Combining is user code (or numpy over every answer): never on the event loop.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.combine, list(answers))

    def models(self) -> list[tuple[str, VersionRef]]:
        return [pair for m in self.members for pair in m.models()]


class SplitRunner(Runner):
    def __init__(self, branches: list[tuple[ModelRunner, float]]):
        self.branches = [b for b, _ in branches]
        total = sum(w for _, w in branches)
        self.edges = np.cumsum([w / total for _, w in branches]).tolist()
        self.label = "split " + ", ".join(f"{b.model} {w:g}" for b, w in branches)

    def pick(self, key: str | None) -> ModelRunner:
        """The branch for a request: by its key's hash (stable), or at random without one."""
        if key is None:
            point = random.random()
        else:
            point = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
        for branch, edge in zip(self.branches, self.edges, strict=True):
            if point < edge:
                return branch
        return self.branches[-1]

    async def run(self, inputs: list[Any], key: str | None) -> list[Any]:
        return await self.pick(key).run(inputs, key)

    def models(self) -> list[tuple[str, VersionRef]]:
        return [pair for b in self.branches for pair in b.models()]


class Pipeline:
    """The steps of one API."""

    def __init__(self, api: str, runners: list[Runner]):
        self.api = api
        self.runners = runners

    async def run(self, inputs: list[Any], key: str | None = None) -> list[Any]:
        for index, runner in enumerate(self.runners):
            try:
                inputs = await runner.run(inputs, key)
            except ModelcoreError as exc:
                raise StepFailed(
                    self._where(index, runner) + exc.message,
                    cause=exc.cause,
                    status=exc.status,
                    headers=exc.headers,
                ) from exc
            except (KeyboardInterrupt, asyncio.CancelledError):
                raise
            except BaseException as exc:  # a step's sys.exit() must not stop the server
                raise StepFailed(
                    self._where(index, runner) + f"{type(exc).__name__}: {exc}",
                    cause=type(exc).__name__,
                    status=500,
                ) from exc
        return inputs

    def _where(self, index: int, runner: Runner) -> str:
        return f"pipeline {self.api!r} step {index} ({runner.label}): "

    def models(self) -> list[tuple[str, VersionRef]]:
        return [pair for r in self.runners for pair in r.models()]


def step_models(steps: Sequence[Step]) -> list[tuple[str, VersionRef]]:
    """Every (model, version) the steps use, in order (for the manager and the checks)."""
    out: list[tuple[str, VersionRef]] = []
    for step in steps:
        if isinstance(step, ModelStep):
            out.append((step.model, step.version))
        elif isinstance(step, EnsembleStep):
            out += [_ref(m) for m in step.ensemble.models]
        elif isinstance(step, SplitStep):
            out += [(b.model, b.version) for b in step.split]
    return out


def step_functions(steps: Sequence[Step]) -> list[tuple[int, str]]:
    """(step index, function reference) of every Python step and Python combine."""
    out = []
    for i, step in enumerate(steps):
        if isinstance(step, PythonStep):
            out.append((i, step.python))
        elif isinstance(step, EnsembleStep) and isinstance(step.ensemble.combine, PythonCombine):
            out.append((i, step.ensemble.combine.python))
    return out


def build(
    loaded: LoadedSpec,
    api: str,
    steps: Sequence[Step],
    manager: ModelManager,
    executor: ThreadPoolExecutor,
) -> Pipeline:
    """Import every function and bind every model once, at start-up."""
    runners: list[Runner] = []
    for step in steps:
        if isinstance(step, ModelStep):
            runners.append(ModelRunner(manager, step.model, step.version))
        elif isinstance(step, PythonStep):
            runners.append(PythonRunner(_function(loaded, step.python), step.python, executor))
        elif isinstance(step, EnsembleStep):
            members = [ModelRunner(manager, *_ref(m)) for m in step.ensemble.models]
            combine = step.ensemble.combine
            if isinstance(combine, PythonCombine):
                fn = _function(loaded, combine.python)
                runners.append(EnsembleRunner(members, _checked(fn), combine.python, executor))
            else:
                runners.append(EnsembleRunner(members, COMBINE[combine], combine, executor))
        elif isinstance(step, SplitStep):
            runners.append(
                SplitRunner(
                    [(ModelRunner(manager, b.model, b.version), b.weight) for b in step.split]
                )
            )
    return Pipeline(api, runners)


def same_length(what: str, inputs: list[Any], outputs: Any) -> list[Any]:
    if isinstance(outputs, tuple):
        outputs = list(outputs)
    if not isinstance(outputs, list) or len(outputs) != len(inputs):
        got = f"{len(outputs)} outputs" if isinstance(outputs, list) else type(outputs).__name__
        raise PredictionError(
            f"{what} returned {got} for {len(inputs)} inputs; it must return a list as long"
        )
    return outputs


def _ref(member: str | ModelRef) -> tuple[str, VersionRef]:
    return (member, "latest") if isinstance(member, str) else (member.model, member.version)


def _function(loaded: LoadedSpec, ref: str) -> Callable[..., Any]:
    fn = load_object(loaded.resolve_handler(ref), "pipeline function")
    if not callable(fn):
        raise PredictionError(f"pipeline function {ref} is not callable")
    return fn


def _checked(fn: Callable[[list[list[Any]]], list[Any]]) -> Callable[[list[list[Any]]], list[Any]]:
    def combine(answers: list[list[Any]]) -> list[Any]:
        return same_length("the combine function", answers[0], fn(answers))

    return combine


# -- built-in combines: each takes every model's outputs, returns one output per input ----------
def _mean(answers: list[list[Any]]) -> list[Any]:
    out = []
    for row in zip(*answers, strict=True):
        try:
            value = np.mean([np.asarray(_number(x), dtype=float) for x in row], axis=0)
        except (TypeError, ValueError) as exc:
            raise PredictionError(f"combine mean needs numbers, got {row[0]!r}: {exc}") from exc
        out.append(value.tolist() if value.ndim else float(value))
    return out


def _vote(answers: list[list[Any]]) -> list[Any]:
    out = []
    for row in zip(*answers, strict=True):
        keys = [json.dumps(_plain(x), sort_keys=True) for x in row]
        winner, _count = Counter(keys).most_common(1)[0]  # ties: the first model's answer
        out.append(row[keys.index(winner)])
    return out


def _concat(answers: list[list[Any]]) -> list[Any]:
    out = []
    for row in zip(*answers, strict=True):
        parts = [_plain(_number(x)) for x in row]
        # Each model's answer joins the list; a single value counts as a list of one.
        out.append([v for p in parts for v in (p if isinstance(p, list) else [p])])
    return out


def _number(x: Any) -> Any:
    """A Clipper-style output string ("2.0") is a number to combine."""
    if isinstance(x, str):
        try:
            return json.loads(x)
        except ValueError:
            return x
    return x


def _plain(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


COMBINE: dict[str, Callable[[list[list[Any]]], list[Any]]] = {
    "mean": _mean,
    "vote": _vote,
    "concat": _concat,
}
