"""Reading YAML safely: YAML 1.2, duplicate keys and tags refused, size and alias expansion capped.

Uses ruamel.yaml's round-trip loader because it keeps the line and column of
every key, which every error message needs. Returns plain ruamel nodes; the
meaning of the keys is checked elsewhere.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError

from mayuri.errors import ExperimentError
from mayuri.experiment import sources

MAX_BYTES = 1 << 20
# Nodes visited with aliases expanded: a "billion laughs" file blows past this
# while every real experiment file stays far below it.
MAX_NODES = 200_000
# Explicit tags that only restate a plain type are harmless; every other tag is refused.
PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq"))


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


def _tag_error(tag_value: object, parent: Any, key: Any, path: Path) -> ExperimentError:
    line, col = _position(parent, key) if parent is not None else (None, None)
    return ExperimentError(
        f"YAML tag '{tag_value}' is not allowed.",
        path=path,
        line=line,
        column=col,
        hint="Experiment files hold plain values only; remove the tag (the part starting with '!').",
    )


def _children(node: Any) -> list[tuple[Any, Any]]:
    if isinstance(node, dict):
        return [(key, value) for key, value in node.items()]
    return list(enumerate(node))


def _check_tree(root: Any, path: Path) -> None:
    """Refuse tags, recursive aliases, and trees too large once aliases are expanded.

    Aliases share one node, so each node's expanded size is computed once and
    reused: an alias bomb is measured exactly without ever being expanded.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, Any, Any, bool]] = [(root, None, None, False)]
    while stack:
        node, parent, key, finishing = stack.pop()
        tag_value = getattr(getattr(node, "tag", None), "value", None)
        if isinstance(node, TaggedScalar) or (tag_value and str(tag_value) not in PLAIN_TAGS):
            raise _tag_error(tag_value, parent, key, path)
        if not isinstance(node, dict | list):
            continue
        if finishing:
            open_nodes.discard(id(node))
            size = 1 + sum(sizes.get(id(child), 1) for _, child in _children(node))
            sizes[id(node)] = size
            if size > MAX_NODES:
                raise ExperimentError(
                    "the file expands to too many values (nested YAML aliases?).",
                    path=path,
                    hint=f"Experiment files are limited to {MAX_NODES:,} values once aliases are expanded.",
                )
            continue
        if id(node) in sizes:
            continue
        open_nodes.add(id(node))
        stack.append((node, parent, key, True))
        for child_key, child in _children(node):
            if isinstance(child, dict | list) and id(child) in open_nodes:
                line, col = _position(node, child_key)
                raise ExperimentError("a YAML alias refers to the value that contains it (a loop).",
                                      path=path, line=line, column=col, hint="Remove the alias.")
            if id(child) not in sizes:
                stack.append((child, node, child_key, False))


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
        sources.read(path, text)
    elif len(text.encode("utf-8", "surrogateescape")) > MAX_BYTES:
        raise ExperimentError(f"the text is larger than {MAX_BYTES:,} bytes.", path=path, line=1)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        with warnings.catch_warnings():
            # YAML 1.2 lets an anchor be defined again (the latest wins); not worth a warning on stderr.
            warnings.simplefilter("ignore", ReusedAnchorWarning)
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
