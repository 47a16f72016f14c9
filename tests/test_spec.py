from __future__ import annotations

from pathlib import Path

import pytest

from modelcore.errors import SpecError
from modelcore.plugins import get_plugin_manager
from modelcore.spec import load_spec, parse_spec
from modelcore.store import ModelStore
from modelcore.validate import check_spec

GOOD = """\
store: ./models
server: {host: 127.0.0.1, port: 8080}
apis:
  - name: add1
    model: add1
    version: latest
    input_type: doubles
    default_output: null
"""


def _error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "specs/api.yaml")
    return info.value.message


def test_good_spec_parses_and_resolves_store_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(GOOD)
    loaded = load_spec(path)
    assert loaded.spec.apis[0].predict_route == "/add1/predict"
    assert loaded.store_url == str(tmp_path / "models")
    assert loaded.spec.server.port == 8080


def test_error_names_file_line_and_field() -> None:
    text = GOOD.replace("    model: add1\n", "    model: ../etc\n")
    assert _error(text) == (
        "specs/api.yaml:5: apis.0.model: use letters, digits, '_', '.', '-', "
        "starting with a letter or digit"
    )


def test_unknown_field_lists_the_allowed_ones() -> None:
    message = _error(GOOD + "    batchin: 3\n")
    assert message.startswith(
        "specs/api.yaml:9: apis.0.batchin: unknown field (allowed: name, route, model"
    )


def test_missing_field_points_at_its_parent() -> None:
    message = _error("store: x\napis:\n  - name: a\n    input_type: doubles\n")
    assert (
        message
        == "specs/api.yaml:3: apis.0.model: an API needs a model, models, a handler or a pipeline"
    )


def test_bad_numbers_and_versions() -> None:
    assert "specs/api.yaml:2: server.port:" in _error(GOOD.replace("port: 8080", "port: 99999"))
    assert "specs/api.yaml:6: apis.0.version:" in _error(
        GOOD.replace("version: latest", "version: 0")
    )


def test_several_errors_are_all_reported() -> None:
    message = _error(
        GOOD.replace("port: 8080", "port: -1").replace("version: latest", "version: x")
    )
    assert len(message.splitlines()) >= 2


def test_duplicate_names_and_routes() -> None:
    text = GOOD + "  - name: add1\n    model: add1\n"
    assert _error(text) == "specs/api.yaml:9: apis.1.name: duplicate API name 'add1' (see apis.0)"
    text = GOOD + "  - name: b\n    model: add1\n    route: /add1/predict\n"
    assert (
        _error(text) == "specs/api.yaml:11: apis.1.route: route /add1/predict is used by apis.0 too"
    )


def test_invalid_yaml_and_wrong_shapes() -> None:
    assert _error("store: [unclosed\n").startswith("specs/api.yaml:2: invalid YAML")
    assert (
        _error("- a\n- b\n")
        == "specs/api.yaml:1: the spec must be a mapping with store, server and apis"
    )
    assert _error("store: x\napis: []\n").startswith("specs/api.yaml:2: apis:")


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "nope.yaml")


def test_check_against_plugins_and_store(tmp_path: Path, add1_store: Path) -> None:
    text = f"""\
store: {add1_store}
apis:
  - name: a
    model: add1
    input_type: tensors
  - name: b
    model: missing
  - name: c
    model: add1
    version: 9
  - name: d
    model: add1
    backend: nosuchbackend
"""
    loaded = parse_spec(text, "s.yaml")
    with pytest.raises(SpecError) as info:
        check_spec(loaded, get_plugin_manager(), ModelStore(loaded.store_url))
    lines = info.value.message.splitlines()
    assert lines[0].startswith("s.yaml:5: apis.0.input_type: unknown input type 'tensors'")
    assert lines[1].startswith("s.yaml:7: apis.1.model: model 'missing' is not in the store")
    assert lines[2] == "s.yaml:10: apis.2.version: model 'add1' has no version 9 in the store"
    assert lines[3].startswith("s.yaml:13: apis.3.backend: no backend 'nosuchbackend' is installed")


def test_models_and_handler_fields_are_checked() -> None:
    base = "store: .\napis:\n  - name: a\n"
    assert _error(base + "    models: {dir: x, path: y}\n") == (
        "specs/api.yaml:4: apis.0.models: give exactly one of path, paths or dir"
    )
    assert _error(base + "    model: m\n    models: {dir: x}\n") == (
        "specs/api.yaml:5: apis.0.models: give model or models, not both"
    )
    assert _error(base + "    handler: nocolon\n") == (
        "specs/api.yaml:4: apis.0.handler: a handler is path/to/file.py:Class or module:Class"
    )
    assert _error(base + "    models: {dir: x, disk_cache_size: lots}\n") == (
        "specs/api.yaml:4: apis.0.models.disk_cache_size: 'lots' is not a size such as '500MB' or '2GiB'"
    )
    assert "apis.0.models.cache_size" in _error(base + "    models: {dir: x, cache_size: 0}\n")
    assert "unknown field" in _error(base + "    models: {dir: x, paths_: []}\n")


def test_check_reports_missing_folders_and_broken_handlers(
    tmp_path: Path, add1_store: Path
) -> None:
    (tmp_path / "bad_handler.py").write_text("raise RuntimeError('boom at import')\n")
    text = f"""\
store: {add1_store}
apis:
  - name: a
    models: {{dir: nowhere}}
  - name: b
    models:
      paths:
        - {{name: x, path: add1}}
        - {{name: y, path: missing}}
  - name: c
    handler: {tmp_path}/bad_handler.py:Handler
  - name: d
    handler: {tmp_path}/absent.py:Handler
"""
    loaded = parse_spec(text, "s.yaml")
    with pytest.raises(SpecError) as info:
        check_spec(loaded, get_plugin_manager(), ModelStore(loaded.store_url))
    lines = info.value.message.splitlines()
    assert lines[0] == f"s.yaml:4: apis.0.models.dir: no such folder {add1_store}/nowhere"
    assert (
        lines[1]
        == f"s.yaml:9: apis.1.models.paths.1.path: model 'missing' is not in the store {add1_store}/missing"
    )
    assert lines[2].startswith("s.yaml:11: apis.2.handler: cannot import handler")
    assert "RuntimeError: boom at import" in lines[2]
    assert (
        lines[3] == f"s.yaml:13: apis.3.handler: handler file {tmp_path}/absent.py does not exist"
    )


def test_isolation_inline_is_checked() -> None:
    inline = GOOD + "    isolation: inline\n"
    api = parse_spec(inline + "    inline_budget_ms: 0.5\n", "specs/api.yaml").spec.apis[0]
    assert (api.isolation, api.inline_budget_ms) == ("inline", 0.5)
    assert "apis.0.isolation: replicas and environment need isolation: process" in _error(
        inline + "    replicas: 2\n"
    )
    assert "apis.0.inline_budget_ms:" in _error(inline + "    inline_budget_ms: 0\n")
    assert "apis.0.isolation: Input should be 'thread', 'process' or 'inline'" in _error(
        GOOD + "    isolation: loop\n"
    )
