"""`${name}` interpolation of parameters into params and commands.

`${a.b}` reads a nested param; `${mayuri.run_dir}`, `${mayuri.project_root}`,
`${mayuri.run_id}`, `${mayuri.shard}` and `${mayuri.shards}` are built in and known only when a run starts, so they
can be left symbolic (for fingerprints) and filled in at launch. `$${x}` is a
literal `${x}`. A value that is exactly one `${x}` keeps x's type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from mayuri.errors import ExperimentError
from mayuri.suggest import did_you_mean

BUILTINS = ("mayuri.run_dir", "mayuri.project_root", "mayuri.run_id", "mayuri.shard", "mayuri.shards")
# Upstream outputs (depends_on) are filled in at launch under this prefix.
UPSTREAM_PREFIX = "mayuri.upstream."
_REF = re.compile(r"\$(\$?)\{\s*([^}]*?)\s*\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_/-]*(\.[A-Za-z0-9_/-]+)*$")


class UndefinedName(ExperimentError):
    """A `${name}` that names nothing in scope."""


def as_text(value: Any) -> str:
    """How a parameter value is written into a command: JSON spelling for non-strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def instance_label(job: str, labels: Mapping[str, Any]) -> str:
    """`train[lr=0.1,seed=1]`: a job named by the params that tell its instances apart (`job` when none)."""
    if not labels:
        return job
    return job + "[" + ",".join(f"{k}={as_text(v)}" for k, v in labels.items()) + "]"


def _lookup(name: str, scope: Mapping[str, Any]) -> Any:
    if name in scope:
        return scope[name]
    value: Any = scope
    for part in name.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            raise KeyError(name)
    return value


class Interpolator:
    """Resolves `${...}` against a scope of params (which may refer to each other)."""

    def __init__(self, params: Mapping[str, Any], builtins: Mapping[str, str] | None = None) -> None:
        self.params = params
        self.builtins = builtins
        self._resolving: list[str] = []
        self._done: dict[str, Any] = {}

    def _value_of(self, name: str) -> Any:
        if name in BUILTINS or name.startswith(UPSTREAM_PREFIX):
            if self.builtins is None:
                return "${" + name + "}"
            return self.builtins[name]
        if name in self._done:
            return self._done[name]
        if name in self._resolving:
            cycle = " -> ".join([*self._resolving[self._resolving.index(name):], name])
            raise ExperimentError(f"params refer to each other in a loop: {cycle}.")
        try:
            raw = _lookup(name, self.params)
        except KeyError:
            choices = [*self.params, *BUILTINS]
            raise UndefinedName(
                f"undefined name '${{{name}}}' — {did_you_mean(name, choices)}"
            ) from None
        self._resolving.append(name)
        try:
            value = self.resolve(raw)
        finally:
            self._resolving.pop()
        self._done[name] = value
        return value

    def param(self, name: str) -> Any:
        """The resolved value of the top-level param `name`."""
        return self._value_of(name)

    def resolve(self, value: Any) -> Any:
        """`value` with every `${...}` replaced (recursively through lists and mappings)."""
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, str) or "$" not in value:
            return value
        whole = _REF.fullmatch(value)
        if whole and not whole.group(1):
            return self._value_of(self._checked(whole.group(2)))

        def replace(match: re.Match[str]) -> str:
            if match.group(1):
                return "${" + match.group(2) + "}"
            return as_text(self._value_of(self._checked(match.group(2))))

        return _REF.sub(replace, value)

    @staticmethod
    def _checked(name: str) -> str:
        if not _NAME.match(name):
            raise ExperimentError(f"'${{{name}}}' is not a valid reference (write ${{name}} or ${{a.b}}).")
        return name


def references(value: Any) -> set[str]:
    """The names a value refers to with `${...}` (not counting escaped ones)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for v in value.values():
            found |= references(v)
    elif isinstance(value, list):
        for v in value:
            found |= references(v)
    elif isinstance(value, str):
        found.update(m.group(2) for m in _REF.finditer(value) if not m.group(1))
    return found
