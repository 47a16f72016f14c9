"""The API spec: YAML checked by strict pydantic models, errors reported by file and line.

A bad spec never becomes a traceback: every problem is rendered as
``specs/api.yaml:12: apis.0.batching.max_batch_size: must be > 0``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from modelcore.errors import SpecError
from modelcore.store.layout import is_model_name
from modelcore.units import parse_size

_ROUTE = re.compile(r"^/[A-Za-z0-9_.\-/]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSpec(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_body_bytes: Annotated[int, Field(gt=0)] = 16 * 1024 * 1024
    """Requests with a larger body answer 413."""
    request_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    """A prediction not answered within this answers 504 (its computation is abandoned)."""
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 30.0
    """On SIGTERM: how long requests in flight may take to finish before models unload."""
    admin_token: str | None = None
    """Bearer token for management routes; ``MODELCORE_ADMIN_TOKEN`` in the environment wins.
    Without one, management routes exist only when the server listens on loopback."""
    predict_token: str | None = None
    """Bearer token every predict route requires; ``MODELCORE_PREDICT_TOKEN`` wins."""
    verify_hashes: bool = True
    """Check every file of a version against its manifest's sha256 before loading it."""
    require_signed: bool = False
    """Refuse versions whose manifest lacks a valid HMAC (key in ``MODELCORE_SIGNING_KEY``)."""


class NamedPath(_Strict):
    name: str
    path: str
    """A model folder: relative to ``store``, absolute, or an fsspec URL."""

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return _check_name(value)


class ModelsSpec(_Strict):
    """Several models for one API (Cortex's ``multi_model_reloading``): exactly one of path, paths, dir."""

    path: str | None = None
    """One model folder (its name is the folder's name unless ``name`` is given)."""
    name: str | None = None
    paths: list[NamedPath] | None = None
    """Several model folders, each with a name."""
    dir: str | None = None
    """A folder whose every sub-folder is a model; models come and go while serving."""
    cache_size: Annotated[int, Field(gt=0)] | None = None
    """Model versions held in memory; least recently used are unloaded first. Set: models load lazily."""
    disk_cache_size: Annotated[int, Field(gt=0)] | str | None = None
    """For remote stores: versions (a count) or bytes (``"2GB"``) kept on local disk."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelsSpec:
        given = [k for k in ("path", "paths", "dir") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of path, paths or dir")
        if self.name is not None and self.path is None:
            raise _LocatedError(("name",), "name goes with path (paths entries carry their own)")
        if self.name is not None:
            _check_name(self.name)
        if self.disk_cache_size is not None:
            try:
                parse_size(self.disk_cache_size)
            except ValueError as exc:
                raise _LocatedError(("disk_cache_size",), str(exc)) from None
        return self


class BatchingSpec(_Strict):
    """Concurrent requests to one model version are handed to the backend as one list."""

    max_batch_size: Annotated[int, Field(gt=0, le=65536)] = 32
    max_delay_ms: Annotated[float, Field(ge=0, le=60000)] = 0.0
    """How long a batch may wait for more inputs once a thread is free (0: never wait)."""
    adaptive: bool = False
    """Tune the batch size (AIMD) so batches finish within half of the API's ``slo_ms``."""


class CacheSpec(_Strict):
    """A prediction cache, keyed by model, version and input."""

    max_bytes: Annotated[int, Field(gt=0)] | str

    @field_validator("max_bytes")
    @classmethod
    def _size(cls, value: int | str) -> int | str:
        if isinstance(value, str):
            _count, size = parse_size(value)
            if size is None:
                raise ValueError("a size such as '64MB'")
        return value

    @property
    def bytes(self) -> int:
        if isinstance(self.max_bytes, int):
            return self.max_bytes
        return parse_size(self.max_bytes)[1] or 0


class EnvironmentSpec(_Strict):
    """A worker environment: packages to install (built once, cached), or an interpreter to use."""

    requirements: list[str] = Field(default_factory=list)
    python: str | None = None
    """An existing Python (e.g. another venv's ``bin/python``) with modelcore installed; used as is."""


_FUNCTION_REF = re.compile(r"^[^:\s]+:[A-Za-z_][A-Za-z0-9_]*$")


def _check_ref(value: str) -> str:
    if not _FUNCTION_REF.match(value):
        raise ValueError("a function is path/to/file.py:function or package.module:function")
    return value


class ModelRef(_Strict):
    """A model of the store (and optionally a pinned version) inside a pipeline step."""

    model: str
    version: Literal["latest"] | Annotated[int, Field(gt=0)] = "latest"

    @field_validator("model")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return _check_name(value)


class ModelStep(ModelRef):
    """``- model: name``: the step's inputs go through a model (with its own batching)."""


class PythonStep(_Strict):
    """``- python: module:function``: a transform, a list in and a list as long out."""

    python: str

    @field_validator("python")
    @classmethod
    def _ref(cls, value: str) -> str:
        return _check_ref(value)


class PythonCombine(_Strict):
    python: str

    @field_validator("python")
    @classmethod
    def _ref(cls, value: str) -> str:
        return _check_ref(value)


class Ensemble(_Strict):
    models: Annotated[list[str | ModelRef], Field(min_length=2)]
    """The same inputs go to every model at once."""
    combine: Literal["mean", "vote", "concat"] | PythonCombine = "mean"
    """How each input's outputs are combined: mean, vote (most common), concat, or a function
    taking the list of every model's outputs and returning one list."""

    @field_validator("models")
    @classmethod
    def _names(cls, value: list[str | ModelRef]) -> list[str | ModelRef]:
        for item in value:
            if isinstance(item, str):
                _check_name(item)
        return value


class EnsembleStep(_Strict):
    ensemble: Ensemble


class SplitBranch(ModelRef):
    weight: Annotated[float, Field(gt=0)]


class SplitStep(_Strict):
    """``- split: [{model: a, weight: 90}, {model: b, weight: 10}]``: each request takes one branch."""

    split: Annotated[list[SplitBranch], Field(min_length=2)]


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kinds = [k for k in ("model", "python", "ensemble", "split") if k in value]
        return kinds[0] if len(kinds) == 1 else None
    if isinstance(value, BaseModel):
        return {
            ModelStep: "model",
            PythonStep: "python",
            EnsembleStep: "ensemble",
            SplitStep: "split",
        }.get(type(value))
    return None


Step = Annotated[
    Annotated[ModelStep, Tag("model")]
    | Annotated[PythonStep, Tag("python")]
    | Annotated[EnsembleStep, Tag("ensemble")]
    | Annotated[SplitStep, Tag("split")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step is one of: model, python, ensemble, split",
    ),
]


class ApiSpec(_Strict):
    name: str
    """The API's name; its route is ``POST /<name>/predict`` unless ``route`` says otherwise."""
    route: str | None = None
    model: str | None = None
    """A model in the store."""
    models: ModelsSpec | None = None
    """Several models (or model folders outside the store)."""
    pipeline: Annotated[list[Step], Field(min_length=1)] | None = None
    """Steps a request flows through, each step's outputs the next one's inputs."""
    handler: str | None = None
    """A Python handler class: ``handlers/text.py:Handler`` (relative to the spec) or ``module:Class``."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Passed to the handler's constructor."""
    version: Literal["latest"] | Annotated[int, Field(gt=0)] = "latest"
    backend: str | None = None
    """Backend for version folders without a manifest (a bare ``model.onnx``)."""
    input_type: str = "doubles"
    default_output: Any = None
    """Answered with ``"default": true`` when no model can answer."""
    device: str = "cpu"
    threads: Annotated[int, Field(gt=0, le=256)] = 2
    """Threads predicting for this API's model at once."""
    isolation: Literal["thread", "process", "inline"] | None = None
    """``process`` runs the model in worker processes, ``thread`` in the server's threads,
    ``inline`` on the event loop (for models that answer in microseconds); unset, the backend
    decides (threads, or a worker), and a model in threads that proves it answers in
    microseconds moves onto the event loop."""
    inline_budget_ms: Annotated[float, Field(gt=0, le=100)] = 1.0
    """On the event loop: ten calls within 1,000 that take longer (two over ten times this) move
    the version to threads for good."""
    replicas: Annotated[int, Field(gt=0, le=64)] = 1
    """Worker processes per model version (with process isolation)."""
    environment: EnvironmentSpec | None = None
    """The worker's environment; implies process isolation."""
    timeout_s: Annotated[float, Field(gt=0)] = 60.0
    """A worker that takes longer to answer is killed and restarted; the request answers 503."""
    max_queue: Annotated[int, Field(gt=0)] | None = None
    """Requests waiting for this model beyond this answer 503 with ``Retry-After``."""
    batching: BatchingSpec | None = None
    slo_ms: Annotated[float, Field(gt=0)] | None = None
    """A request not answered within this gets ``default_output`` with ``"default": true``."""
    cache: CacheSpec | None = None

    @model_validator(mode="after")
    def _what_to_serve(self) -> ApiSpec:
        if self.model is not None and self.models is not None:
            raise _LocatedError(("models",), "give model or models, not both")
        given = [
            k for k in ("model", "models", "handler", "pipeline") if getattr(self, k) is not None
        ]
        if not given:
            raise _LocatedError(("model",), "an API needs a model, models, a handler or a pipeline")
        if self.pipeline is not None and len(given) > 1:
            raise _LocatedError(("pipeline",), f"a pipeline API takes no {given[0]} of its own")
        if self.isolation in ("thread", "inline") and (
            self.replicas > 1 or self.environment is not None
        ):
            raise _LocatedError(
                ("isolation",), "replicas and environment need isolation: process (or unset)"
            )
        if self.handler is not None and not re.match(
            r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$", self.handler
        ):
            raise _LocatedError(("handler",), "a handler is path/to/file.py:Class or module:Class")
        return self

    @field_validator("name", "model")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value)

    @field_validator("route")
    @classmethod
    def _route(cls, value: str | None) -> str | None:
        if value is not None and (
            not _ROUTE.match(value) or "//" in value or "/../" in value + "/"
        ):
            raise ValueError("a route is a path such as /add1/predict")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.match(r"^(cpu|auto|cuda(:[0-9]+)?)$", value):
            raise ValueError("device is cpu, auto, cuda or cuda:N")
        return value

    @property
    def predict_route(self) -> str:
        """``POST /<name>/predict`` (Clipper); a handler API answers at ``/<name>`` (Cortex)."""
        if self.route:
            return self.route
        return f"/{self.name}" if self.handler else f"/{self.name}/predict"


class Spec(_Strict):
    store: str = "."
    """A path (relative to the spec file) or an fsspec URL such as ``s3://bucket/models``."""
    storage_options: dict[str, Any] = Field(default_factory=dict)
    poll_interval: Annotated[float, Field(gt=0)] = 10.0
    """Seconds between polls of a remote store (local stores are watched for events)."""
    watch: bool = True
    """Watch the store and swap in new, changed and removed versions while serving."""
    server: ServerSpec = Field(default_factory=ServerSpec)
    apis: Annotated[list[ApiSpec], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> Spec:
        seen: dict[str, int] = {}
        routes: dict[str, int] = {}
        for i, api in enumerate(self.apis):
            if api.name in seen:
                raise _LocatedError(
                    ("apis", i, "name"),
                    f"duplicate API name {api.name!r} (see apis.{seen[api.name]})",
                )
            seen[api.name] = i
            if api.predict_route in routes:
                raise _LocatedError(
                    ("apis", i, "route"),
                    f"route {api.predict_route} is used by apis.{routes[api.predict_route]} too",
                )
            routes[api.predict_route] = i
        return self


def _check_name(value: str) -> str:
    if not is_model_name(value):
        raise ValueError("use letters, digits, '_', '.', '-', starting with a letter or digit")
    return value


class _LocatedError(ValueError):
    """A cross-field error that knows which field it belongs to."""

    def __init__(self, loc: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.loc = loc
        self.message = message


class LoadedSpec:
    """A validated spec with where it came from, so later checks can point at lines."""

    def __init__(self, spec: Spec, source: str, lines: dict[tuple[str | int, ...], int]):
        self.spec = spec
        self.source = source
        self.lines = lines

    @property
    def base_dir(self) -> Path:
        return Path(self.source).resolve().parent if self.source != "<string>" else Path.cwd()

    @property
    def store_url(self) -> str:
        store = self.spec.store
        if "://" in store or os.path.isabs(store):
            return store
        return str((self.base_dir / store).resolve())

    def resolve_path(self, path: str) -> str:
        """A model folder named in the spec: URLs and absolute paths as is, others under ``store``."""
        if "://" in path or os.path.isabs(path):
            return path
        base = self.store_url
        if "://" in base:
            return base.rstrip("/") + "/" + path.strip("/")
        return str((Path(base) / path).resolve())

    def resolve_handler(self, ref: str) -> str:
        """``file.py:Class`` relative to the spec file, made absolute; ``module:Class`` as is."""
        target, _, cls = ref.rpartition(":")
        if target.endswith(".py") and not os.path.isabs(target):
            target = str((self.base_dir / target).resolve())
        return f"{target}:{cls}"

    def error(self, loc: tuple[str | int, ...], message: str) -> str:
        """Render one problem as ``file:line: loc: message``."""
        return f"{self.source}:{_line_for(self.lines, loc)}: {_dotted(loc)}: {message}"


def load_spec(path: str | os.PathLike[str]) -> LoadedSpec:
    """Read and validate a spec file; raise :class:`SpecError` listing every problem."""
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SpecError(f"{source}: cannot read spec: {exc.strerror or exc}") from None
    return parse_spec(text, source)


def parse_spec(text: str, source: str = "<string>") -> LoadedSpec:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{source}:{line}: invalid YAML: {problem}") from None
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    if not isinstance(data, dict):
        raise SpecError(f"{source}:1: the spec must be a mapping with store, server and apis")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError("\n".join(_render(exc, source, lines))) from None
    return LoadedSpec(spec, source, lines)


def _render(
    exc: ValidationError, source: str, lines: dict[tuple[str | int, ...], int]
) -> list[str]:
    out = []
    for err in exc.errors():
        loc: tuple[str | int, ...] = tuple(err["loc"])
        message = err["msg"]
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _LocatedError):
            loc, message = loc + ctx_error.loc, ctx_error.message
        elif err["type"] == "extra_forbidden":
            message = f"unknown field{_allowed(loc)}"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        loc = tuple(
            p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
        )
        # A tagged union repeats the tag ("pipeline.0.python.python"): say it once.
        loc = tuple(p for i, p in enumerate(loc) if i == 0 or p != loc[i - 1] or isinstance(p, int))
        out.append(f"{source}:{_line_for(lines, loc)}: {_dotted(loc)}: {message}")
    return out


def _allowed(loc: tuple[str | int, ...]) -> str:
    model: type[BaseModel] | None = Spec
    for part in loc[:-1]:
        if model is None:
            return ""
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return ""
        model = _model_of(field.annotation)
    if model is None:
        return ""
    return " (allowed: " + ", ".join(model.model_fields) + ")"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _collect_lines(
    node: yaml.Node, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            lines[sub] = key.start_mark.line + 1
            _collect_lines(value, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _collect_lines(item, (*path, i), lines)


def _line_for(lines: dict[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(spec)"
