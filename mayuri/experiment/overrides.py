"""Command-line and personal overrides in Hydra's grammar.

`KEY=VALUE` (every job with that param), `JOB.KEY=VALUE`, `KEY=a,b` and
`KEY=choice(a, b)` / `KEY=range(0, 3)` sweeps, `+KEY=VALUE` adds a param the
file does not have, `~KEY` removes one, `KEY=null` sets None. Values are read
as YAML 1.2 scalars (`lr=0.1` is a number, `name=no` a string); quotes keep
commas and spaces in one string, brackets and braces keep the commas of a
list or mapping. Anything else that looks like grammar (an unbalanced quote
or bracket, Hydra's sweeper-only `interval(...)`) is refused, never split into
strange values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mayuri.errors import ExperimentError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
_CALL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$", re.DOTALL)
_CLOSERS = {"[": "]", "{": "}", "(": ")"}
# Hydra functions that only a sweeper plugin (or its cast rules) understands.
_REFUSED_CALLS = ("interval", "tag", "glob", "sort", "shuffle", "int", "float", "str", "bool", "json_str")


@dataclass(frozen=True)
class Override:
    """One override: an optional job, a (dotted) param key, what to do, and one value or a sweep.

    `op` is "set" (`KEY=VALUE`), "add" (`+KEY=VALUE`) or "remove" (`~KEY`).
    """

    job: str | None
    key: str
    values: tuple[Any, ...]
    text: str
    op: str = "set"
    # Written as a sweep (`a,b`, `choice(a)`, `range(..)`), even when it has one value.
    sweep: bool = False

    @property
    def is_sweep(self) -> bool:
        return self.sweep or len(self.values) > 1


def parse_value(text: str) -> Any:
    """A scalar (or flow list/mapping) as YAML 1.2 reads it."""
    if text == "":
        return ""
    # Loaded only when an override is given: a plain cached `mayuri run` never needs ruamel.yaml.
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from mayuri.experiment.plain import to_plain

    try:
        value = YAML(typ="safe", pure=True).load(text)
    except YAMLError:
        return text
    if isinstance(value, dict | list | str | int | float | bool) or value is None:
        return to_plain(value)
    return text


def _refuse(text: str, problem: str, hint: str) -> ExperimentError:
    return ExperimentError(f"override '{text}': {problem}", hint=hint)


def split_top(text: str, override: str) -> list[str]:
    """`text` split at the commas outside quotes, brackets, braces and parentheses."""
    parts: list[str] = []
    stack: list[str] = []
    quote: str | None = None
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\" and index + 1 < len(text):
                current.append(text[index:index + 2])
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in _CLOSERS:
            stack.append(_CLOSERS[char])
        elif char in ")]}":
            if not stack or stack.pop() != char:
                raise _refuse(override, f"'{char}' closes nothing.",
                              "Balance the brackets, or quote the value: key='text with ) in it'.")
        elif char == "," and not stack:
            parts.append("".join(current))
            current = []
            index += 1
            continue
        current.append(char)
        index += 1
    if quote:
        raise _refuse(override, f"the quote {quote} is never closed.",
                      f"Close it ({quote}...{quote}), or escape a literal quote with a backslash.")
    if stack:
        raise _refuse(override, f"'{stack[-1]}' is missing.", "Close every bracket, brace and parenthesis.")
    parts.append("".join(current))
    return parts


def _unquote(element: str, override: str) -> Any:
    """One element: a quoted string (single quotes: `\\'` and `\\\\` unescaped; double: as YAML) or a YAML value."""
    if element.startswith(("'", '"')):
        quote = element[0]
        if len(element) < 2 or element[-1] != quote or _closes_early(element):
            raise _refuse(override, f"{element!r} has text after its closing quote.",
                          "Quote the whole value: key='a b', or key=\"it's\".")
        if quote == "'":
            return re.sub(r"\\(.)", r"\1", element[1:-1])
        # Double quotes read as YAML (and JSON) read them: `"two\nlines"` is two lines.
        value = parse_value(element)
        if not isinstance(value, str) or value == element:
            raise _refuse(override, f"{element} is not a valid double-quoted string.",
                          "Escape a backslash as \\\\, or use single quotes.")
        return value
    if "'" in element or '"' in element:
        if not element.startswith(("[", "{")):
            raise _refuse(override, f"{element!r} has a quote inside an unquoted value.",
                          "Quote the whole value: key='a,b', or escape the quote inside quotes: key='it\\'s'.")
    call = _CALL.match(element)
    if call:
        raise _refuse(override, f"'{call.group(1)}(...)' cannot be nested in another value.",
                      "Use choice(...) or range(...) as the whole value.")
    value = parse_value(element)
    if element.startswith(("[", "{")) and isinstance(value, str):
        raise _refuse(override, f"{element!r} is not a valid list or mapping.",
                      "Write lists as [a, b] and mappings as {k: v}; quote a string that starts with [ or {.")
    return value


def _closes_early(element: str) -> bool:
    """Whether the opening quote of `element` closes before its last character."""
    quote, index = element[0], 1
    while index < len(element) - 1:
        if element[index] == "\\":
            index += 2
            continue
        if element[index] == quote:
            return True
        index += 1
    return index != len(element) - 1


def _range(args: list[Any], override: str) -> list[Any]:
    from mayuri.experiment.sweeps import range_values

    if not 1 <= len(args) <= 3 or not all(
        isinstance(a, int | float) and not isinstance(a, bool) for a in args
    ):
        raise _refuse(override, "range takes one to three numbers.",
                      "Write range(stop), range(start, stop) or range(start, stop, step).")
    try:
        return range_values(args, "range")
    except ExperimentError as exc:
        raise _refuse(override, exc.message, exc.hint or "Check start, stop and step.") from None


def _values(raw: str, override: str) -> tuple[tuple[Any, ...], bool]:
    """The value(s) of an override and whether it was written as a sweep."""
    stripped = raw.strip()
    call = _CALL.match(stripped)
    if call and not _balanced_call(stripped):
        call = None
    if call:
        name, inner = call.group(1), call.group(2)
        if name in ("range", "choice"):
            elements = [e.strip() for e in split_top(inner, override)] if inner.strip() else []
            if any(e == "" for e in elements) or not elements:
                raise _refuse(override, f"{name}(...) has an empty argument.",
                              f"Write {name}(a, b) with no extra comma.")
            args = [_unquote(e, override) for e in elements]
            return (tuple(_range(args, override)) if name == "range" else tuple(args)), True
        hint = ("Mayuri sweeps only lists: write KEY=choice(a, b) or KEY=range(start, stop, step)."
                if name in _REFUSED_CALLS else f"Quote it to pass the text as one string: KEY='{stripped}'.")
        raise _refuse(override, f"'{name}(...)' is not supported.", hint)
    elements = [e.strip() for e in split_top(raw, override)]
    if len(elements) > 1 and any(e == "" for e in elements):
        raise _refuse(override, "has an empty value in its list.", "Remove the extra comma, or quote the value.")
    return tuple(_unquote(e, override) for e in elements), len(elements) > 1


def _balanced_call(text: str) -> bool:
    # `f(a),g(b)` matches the call pattern but is two values: its first ')' closes the call.
    try:
        parts = split_top(text, text)
    except ExperimentError:
        return True
    return len(parts) == 1


def parse_override(text: str, job_names: set[str]) -> Override:
    """Parse one command-line override; `JOB.KEY=` when the first part is a job's name."""
    op = "set"
    body = text
    if body.startswith("~"):
        op, body = "remove", body[1:]
    elif body.startswith("++"):
        raise _refuse(text, "'++' (add or replace) is not supported.",
                      "Use KEY=VALUE to change a param the file has, or +KEY=VALUE to add one.")
    elif body.startswith("+"):
        op, body = "add", body[1:]
    key, sep, raw = body.partition("=")
    key = key.strip()
    if not _KEY.match(key) or (not sep and op != "remove"):
        raise ExperimentError(
            f"'{text}' is not an override.",
            hint="Write KEY=VALUE (e.g. lr=0.001), JOB.KEY=VALUE, KEY=a,b or KEY=range(0,3) to sweep, "
            "+KEY=VALUE to add a param, ~KEY to remove one.",
        )
    if op == "remove" and sep:
        raise ExperimentError(f"'{text}' removes a param and gives it a value.",
                              hint=f"Write ~{key} to remove it, or {key}={raw} to change it.")
    job = None
    first, dot, rest = key.partition(".")
    if dot and first in job_names:
        job, key = first, rest
    if op == "remove":
        return Override(job=job, key=key, values=(), text=text, op=op)
    values, sweep = _values(raw, text)
    return Override(job=job, key=key, values=values, text=text, op=op, sweep=sweep)


def set_dotted(params: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in nested params, creating mappings on the way."""
    parts = key.split(".")
    target = params
    for part in parts[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            target[part] = nxt
        target = nxt
    target[parts[-1]] = value


def del_dotted(params: dict[str, Any], key: str) -> None:
    """Remove `a.b.c` from nested params (which must have it)."""
    parts = key.split(".")
    target = params
    for part in parts[:-1]:
        target = target[part]
    del target[parts[-1]]


def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The leaves of nested params under dotted names (`{"model": {"width": 3}}` -> `{"model.width": 3}`)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def has_dotted(params: dict[str, Any], key: str) -> bool:
    """Whether `a.b.c` names a param in nested params."""
    target: Any = params
    for part in key.split("."):
        if not isinstance(target, dict) or part not in target:
            return False
        target = target[part]
    return True
