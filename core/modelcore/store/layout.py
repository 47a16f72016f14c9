"""Names in the store: model names, version folders, and what counts as a version."""

from __future__ import annotations

import re

from modelcore.errors import BadRequest

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_VERSION = re.compile(r"^[1-9][0-9]{0,18}$")


def is_model_name(name: str) -> bool:
    """A safe model name: letters, digits, ``_ . -``, starting with a letter or digit."""
    return bool(_NAME.match(name)) and ".." not in name


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not is_model_name(name):
        raise BadRequest(
            f"invalid model name {name!r}: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, at most 128 characters)"
        )
    return name


def parse_version(text: str) -> int | None:
    """The version number a folder name stands for, or ``None`` when it is not a version."""
    return int(text) if _VERSION.match(text) else None


def check_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BadRequest(f"invalid version {version!r}: versions are positive integers")
    return version
