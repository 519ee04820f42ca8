"""Turning ruamel's round-trip nodes into plain Python values (dict, list, str, int, float, bool)."""

from __future__ import annotations

from typing import Any

from ruamel.yaml.scalarbool import ScalarBoolean


def to_plain(value: Any) -> Any:
    """A deep copy of `value` made of builtin types only, safe to hash and to serialise."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, ScalarBoolean | bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def type_name(value: Any) -> str:
    """The YAML name of a value's type, for messages."""
    value = to_plain(value)
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}.get(
        type(value), type(value).__name__
    )
