"""What `mayuri gc` may collect: the policy, from `[gc]` in mayuri.toml and the command's flags.

Flags override the file key by key; `[gc.experiment.NAME]` tables override
`older_than`, `keep_last` and `failed` for one experiment. Parsing only:
nothing here reads the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mayuri.errors import ConfigError
from mayuri.suggest import did_you_mean
from mayuri.units import parse_duration, parse_size

DEFAULT_GRACE = 3600.0
_PER_EXPERIMENT_KEYS = ("older_than", "keep_last", "failed")


@dataclass(frozen=True)
class RunRules:
    """The rules that pick runs, for the whole store or for one experiment."""

    older_than: float | None = None
    keep_last: int | None = None
    failed: bool = False

    @property
    def selects(self) -> bool:
        """Whether these rules collect anything by themselves (without `max_size`)."""
        return self.older_than is not None or self.keep_last is not None or self.failed


@dataclass(frozen=True)
class Policy:
    """A whole gc policy: run rules, store-wide limits, and what else to free."""

    rules: RunRules = RunRules()
    per_experiment: Mapping[str, RunRules] = field(default_factory=dict)
    max_size: int | None = None
    experiment: str | None = None
    grace: float = DEFAULT_GRACE
    metrics: bool = False
    vacuum: bool = False
    purge: bool = False

    def rules_for(self, experiment: str) -> RunRules:
        """The run rules that apply to runs of `experiment`."""
        return self.per_experiment.get(experiment, self.rules)

    def to_json(self) -> dict[str, Any]:
        return {
            "older_than": self.rules.older_than,
            "keep_last": self.rules.keep_last,
            "failed": self.rules.failed,
            "max_size": self.max_size,
            "experiment": self.experiment,
            "grace": self.grace,
            "metrics": self.metrics,
            "vacuum": self.vacuum,
            "purge": self.purge,
            "per_experiment": {name: vars(r) for name, r in self.per_experiment.items()},
        }


def _value(source: str, key: str, raw: Any, path: Path | None = None) -> Any:
    try:
        if key in ("older_than", "grace"):
            return parse_duration(raw)
        if key == "max_size":
            return parse_size(raw)
        if key == "keep_last":
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                raise ValueError(f"must be a whole number >= 0, not {raw!r}")
            return raw
        if key == "failed":
            if not isinstance(raw, bool):
                raise ValueError(f"must be true or false, not {raw!r}")
            return raw
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}.", path=path) from None
    raise ConfigError(
        f"{source}: unknown key — {did_you_mean(key, _PER_EXPERIMENT_KEYS)}", path=path
    )


def _experiment_tables(
    config: Mapping[str, Any], base: RunRules, path: Path | None
) -> dict[str, RunRules]:
    tables = config.get("experiment", {})
    result = {}
    for name, values in tables.items():
        if not isinstance(values, dict):
            raise ConfigError(f"[gc.experiment.{name}] must be a table.", path=path)
        source = f"[gc.experiment.{name}]"
        parsed = {key: _value(f"{source} {key}", key, raw, path) for key, raw in values.items()}
        result[name] = replace(base, **parsed)
    return result


def build_policy(
    config: Mapping[str, Any], flags: Mapping[str, Any], path: Path | None = None
) -> Policy:
    """The policy from the `[gc]` table (`config`) and the flags given (None = not given).

    Flags are raw strings as typed (`30d`, `50GiB`); a flag given on the
    command line wins over the same key in the file, for every experiment.
    """
    merged = {key: value for key, value in config.items() if key != "experiment"}
    merged.update({key: value for key, value in flags.items() if value is not None})

    def parsed(key: str) -> Any:
        # Name where the value came from: the flag, or the file's [gc] table.
        if flags.get(key) is not None:
            return _value(f"--{key.replace('_', '-')}", key, merged[key])
        return _value(f"[gc] {key}", key, merged[key], path)

    rules = RunRules(
        older_than=parsed("older_than") if "older_than" in merged else None,
        keep_last=parsed("keep_last") if "keep_last" in merged else None,
        failed=bool(parsed("failed")) if "failed" in merged else False,
    )
    per_experiment = _experiment_tables(config, rules, path)
    overridden = {key: flags[key] for key in _PER_EXPERIMENT_KEYS if flags.get(key) is not None}
    if overridden:
        per_experiment = {
            name: replace(r, **{k: getattr(rules, k) for k in overridden})
            for name, r in per_experiment.items()
        }
    return Policy(
        rules=rules,
        per_experiment=per_experiment,
        max_size=parsed("max_size") if merged.get("max_size") is not None else None,
        experiment=flags.get("experiment"),
        grace=parsed("grace") if merged.get("grace") is not None else DEFAULT_GRACE,
        metrics=bool(flags.get("metrics")),
        vacuum=bool(flags.get("vacuum")),
        purge=bool(flags.get("purge")),
    )
