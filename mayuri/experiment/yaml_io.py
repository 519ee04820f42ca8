"""Reading YAML safely: YAML 1.2, duplicate keys and tags refused, size and alias expansion capped.

Uses ruamel.yaml's round-trip loader because it keeps the line and column of
every key, which every error message needs. Returns plain ruamel nodes; the
meaning of the keys is checked elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mayuri.errors import ExperimentError

MAX_BYTES = 1 << 20
# Nodes visited with aliases expanded: a "billion laughs" file blows past this
# while every real experiment file stays far below it.
MAX_NODES = 200_000


def _position(node: Any, key: Any = None) -> tuple[int | None, int | None]:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None, None
    try:
        if key is not None and isinstance(node, CommentedMap):
            line, col = lc.key(key)
        elif key is not None and isinstance(node, CommentedSeq):
            line, col = lc.item(key)
        else:
            line, col = lc.line, lc.col
    except (KeyError, IndexError, TypeError, AttributeError):
        line, col = lc.line, lc.col
    return line + 1, col + 1


def position(node: Any, key: Any = None) -> tuple[int | None, int | None]:
    """1-based (line, column) of `node`, or of `key` inside it."""
    return _position(node, key)


def _check_tree(node: Any, path: Path) -> None:
    budget = MAX_NODES
    stack: list[tuple[Any, Any, Any]] = [(node, None, None)]
    while stack:
        current, parent, key = stack.pop()
        budget -= 1
        if budget < 0:
            raise ExperimentError(
                "the file expands to too many values (nested YAML aliases?).",
                path=path,
                hint=f"Experiment files are limited to {MAX_NODES:,} values once aliases are expanded.",
            )
        tag = getattr(current, "tag", None)
        tag_value = getattr(tag, "value", None)
        if isinstance(current, TaggedScalar) or (tag_value and not str(tag_value).startswith("tag:yaml.org,2002:")):
            line, col = _position(parent, key) if parent is not None else (None, None)
            raise ExperimentError(
                f"YAML tag '{tag_value}' is not allowed.",
                path=path,
                line=line,
                column=col,
                hint="Experiment files hold plain values only; remove the tag (the part starting with '!').",
            )
        if isinstance(current, dict):
            stack.extend((value, current, k) for k, value in current.items())
        elif isinstance(current, list):
            stack.extend((value, current, i) for i, value in enumerate(current))


def load_yaml(path: Path, text: str | None = None) -> Any:
    """Parse `path` (or `text`, named `path` in errors) as YAML 1.2 with ruamel's round-trip loader."""
    if text is None:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ExperimentError("file not found.", path=path, hint="Check the path (it is relative to the current folder).") from None
        if size > MAX_BYTES:
            raise ExperimentError(
                f"the file is {size:,} bytes; experiment files are limited to {MAX_BYTES:,}.",
                path=path,
                line=1,
                hint="Move data out of the experiment file into files the job reads.",
            )
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ExperimentError(f"not UTF-8 text ({exc.reason} at byte {exc.start}).", path=path) from None
    elif len(text.encode("utf-8", "surrogateescape")) > MAX_BYTES:
        raise ExperimentError(f"the text is larger than {MAX_BYTES:,} bytes.", path=path, line=1)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        hint = "Fix the YAML syntax there."
        if "duplicate key" in problem:
            hint = "Each key may appear once per mapping; remove or rename one of them."
        elif "\\t" in problem or "'\\t'" in str(exc):
            hint = "YAML does not allow tabs for indentation; use spaces."
        raise ExperimentError(
            f"malformed YAML: {problem}.",
            path=path,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
            hint=hint,
        ) from None
    except (YAMLError, RecursionError, ValueError) as exc:
        raise ExperimentError(f"malformed YAML: {exc}.", path=path) from None
    _check_tree(data, path)
    return data
