"""What `mayuri gc` may collect: the policy, from `[gc]` in mayuri.toml and the command's flags.

Flags override the file key by key; `[gc.experiment.NAME]` tables override
`older_than`, `keep_last` and `failed` for one experiment. The file's values
arrive parsed (`mayuri.config.GcSettings`); only the flags are parsed here.
Nothing here reads the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mayuri.config import GC_RULE_KEYS, GcSettings, gc_value

DEFAULT_GRACE = 3600.0


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


def build_policy(gc: GcSettings, flags: Mapping[str, Any]) -> Policy:
    """The policy from the parsed `[gc]` table and the flags given (None = not given).

    Flags are raw strings as typed (`30d`, `50GiB`); a flag given on the
    command line wins over the same key in the file, for every experiment.
    """
    given = {key: gc_value(f"--{key.replace('_', '-')}", key, value) for key, value in flags.items()
             if key in (*GC_RULE_KEYS, "max_size", "grace") and value is not None}
    written = {key: value for key, value in vars(gc.rules).items() if value is not None}
    rules = RunRules(**{"failed": False, **written, **{k: v for k, v in given.items() if k in GC_RULE_KEYS}})
    # `[gc.experiment.NAME]` overrides the file's rules for one experiment; a flag overrides both.
    overridden = {k: v for k, v in given.items() if k in GC_RULE_KEYS}
    per_experiment = {
        name: replace(rules, **{**{k: v for k, v in vars(table).items() if v is not None}, **overridden})
        for name, table in gc.experiments.items()
    }
    max_size = given.get("max_size", gc.max_size)
    grace = given.get("grace", gc.grace)
    return Policy(
        rules=rules,
        per_experiment=per_experiment,
        max_size=max_size,
        experiment=flags.get("experiment"),
        grace=DEFAULT_GRACE if grace is None else grace,
        metrics=bool(flags.get("metrics")),
        vacuum=bool(flags.get("vacuum")),
        purge=bool(flags.get("purge")),
    )
