from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path

import pytest

from modelcore import hookspecs
from modelcore.errors import PluginError
from modelcore.hookspecs import hookimpl
from modelcore.plugins import get_plugin_manager
from modelcore.types import BackendInfo

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("modelcore_")
]


class EchoPlugin:
    """A throwaway backend that records every predict call."""

    def __init__(self, name: str):
        self.name = name
        self.calls: list[str] = []

    @hookimpl
    def modelcore_backends(self):
        return [BackendInfo(self.name)]

    @hookimpl
    def modelcore_predict(self, backend, model, inputs):
        if backend != self.name:
            return None
        self.calls.append(backend)
        return [f"{self.name}:{x}" for x in inputs]


def test_every_hookspec_is_typed_and_documented() -> None:
    assert len(HOOKS) >= 7
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and len(fn.__doc__.strip()) > 20, f"{name} has no docstring"
        assert "return" in inspect.get_annotations(fn), f"{name} has no return type"


def test_every_hookspec_is_in_the_plugin_guide() -> None:
    guide = (ROOT / "docs" / "plugins.md").read_text()
    missing = [name for name in HOOKS if f"`{name}" not in guide]
    assert not missing, f"docs/plugins.md does not document {missing}"


def test_backends_resolve_to_their_own_plugin_without_fan_out() -> None:
    a, b = EchoPlugin("echo_a"), EchoPlugin("echo_b")
    pm = get_plugin_manager(entry_points=False, extra=[a, b])
    assert pm.backend("echo_a").predict(None, [1, 2]) == ["echo_a:1", "echo_a:2"]
    assert a.calls == ["echo_a"] and b.calls == []  # b's hook was never called


def test_a_lone_predict_hook_is_called_directly_with_the_arguments_it_declares() -> None:
    class Terse:
        @hookimpl
        def modelcore_backends(self):
            return [BackendInfo(name="terse")]

        @hookimpl
        def modelcore_predict(self, inputs, backend):  # a subset, in its own order
            return [f"{backend}:{x}" for x in inputs]

    pm = get_plugin_manager(entry_points=False, extra=[Terse()])
    backend = pm.backend("terse")
    assert backend._direct_predict is not None  # no pluggy call per request
    assert backend.predict("model", [1, 2]) == ["terse:1", "terse:2"]


def test_hook_wrappers_still_apply_to_resolved_backends() -> None:
    seen: list[int] = []

    class Timing:
        @hookimpl(wrapper=True)
        def modelcore_predict(self, backend, model, inputs):
            seen.append(len(inputs))
            return (yield)

    pm = get_plugin_manager(entry_points=False, extra=[EchoPlugin("echo"), Timing()])
    backend = pm.backend("echo")
    assert backend._direct_predict is None  # through pluggy, so the wrapper sees the call
    assert backend.predict(None, [1, 2, 3]) == ["echo:1", "echo:2", "echo:3"]
    assert seen == [3]


def test_unknown_backend_says_what_to_install() -> None:
    pm = get_plugin_manager(entry_points=False)
    with pytest.raises(PluginError, match="pip install modelcore-pytorch"):
        pm.backend("pytorch")


def test_disable_env_blocks_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELCORE_DISABLE_PLUGINS", "python_closure, other")
    pm = get_plugin_manager()
    assert "python_closure" not in pm.backends()
    assert pm.statuses["python_closure"].status == "disabled"


def test_misspelt_hook_marks_only_that_plugin_broken() -> None:
    class Typo:
        @hookimpl
        def modelcore_predcit(self, backend, model, inputs):
            return []

    pm = get_plugin_manager(extra=[Typo()])
    broken = [s for s in pm.statuses.values() if s.status == "broken"]
    assert len(broken) == 1 and "modelcore_predcit" in (broken[0].error or "")
    assert "python_closure" in pm.backends()


def _fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module_source: str) -> None:
    (tmp_path / "mc_fake_plugin.py").write_text(textwrap.dedent(module_source))
    dist = tmp_path / "mc_fake-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mc-fake\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[modelcore]\nfake = mc_fake_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mc_fake_plugin", raising=False)


def test_plugin_that_fails_to_import_is_reported_and_others_work(tmp_path, monkeypatch) -> None:
    _fake_distribution(tmp_path, monkeypatch, "raise ImportError('needs libfoo.so')\n")
    pm = get_plugin_manager()
    status = pm.statuses["fake"]
    assert status.status == "broken"
    assert status.distribution == "mc-fake"
    assert status.error == "ImportError: needs libfoo.so"
    assert "python_closure" in pm.backends()


def test_third_party_plugin_found_through_entry_points(tmp_path, monkeypatch) -> None:
    _fake_distribution(
        tmp_path,
        monkeypatch,
        """
        from modelcore import hookimpl, BackendInfo

        @hookimpl
        def modelcore_backends():
            return [BackendInfo("fake")]

        @hookimpl
        def modelcore_predict(backend, model, inputs):
            return [len(inputs)] * len(inputs) if backend == "fake" else None
    """,
    )
    pm = get_plugin_manager()
    assert pm.statuses["fake"].status == "ok"
    assert pm.statuses["fake"].backends == ["fake"]
    assert pm.backend("fake").predict(None, ["a", "b"]) == [2, 2]


def test_builtin_input_types_are_registered_through_the_hook() -> None:
    pm = get_plugin_manager(entry_points=False)
    assert set(pm.input_types()) == {"integers", "floats", "doubles", "bytes", "strings"}
