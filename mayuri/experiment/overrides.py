"""Command-line and personal overrides: `KEY=VALUE`, `JOB.KEY=VALUE`, and `KEY=a,b` sweeps.

Values are read as YAML 1.2 scalars (`lr=0.1` is a number, `name=no` a
string). An override names a param that some job has; one that matches
nothing is an error with a suggestion, never silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mayuri.errors import ExperimentError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")


@dataclass(frozen=True)
class Override:
    """One `KEY=VALUE`: an optional job, a (dotted) param key, and one value or a sweep of values."""

    job: str | None
    key: str
    values: tuple[Any, ...]
    text: str

    @property
    def is_sweep(self) -> bool:
        return len(self.values) > 1


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


def _split_values(text: str) -> list[str]:
    # Commas inside brackets belong to a list or mapping value, not to a sweep.
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_override(text: str, job_names: set[str]) -> Override:
    """Parse one command-line override; `JOB.KEY=` when the first part is a job's name."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise ExperimentError(
            f"'{text}' is not an override.",
            hint="Write KEY=VALUE (e.g. lr=0.001), JOB.KEY=VALUE, or KEY=a,b,c to sweep.",
        )
    job = None
    first, dot, rest = key.partition(".")
    if dot and first in job_names:
        job, key = first, rest
    values = tuple(parse_value(part.strip()) for part in _split_values(raw))
    if len(values) > 1 and any(part.strip() == "" for part in _split_values(raw)):
        raise ExperimentError(f"'{text}' has an empty value in its list.", hint="Remove the extra comma.")
    return Override(job=job, key=key, values=values, text=text)


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


def has_dotted(params: dict[str, Any], key: str) -> bool:
    """Whether `a.b.c` names a param in nested params."""
    target: Any = params
    for part in key.split("."):
        if not isinstance(target, dict) or part not in target:
            return False
        target = target[part]
    return True
