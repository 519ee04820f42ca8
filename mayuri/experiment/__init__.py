"""The experiment language: loading YAML, checking it, and expanding it into job instances."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mayuri.experiment.expand import JobInstance, expand
from mayuri.experiment.overrides import Override, parse_override
from mayuri.experiment.spec import ExperimentSpec, JobSpec

if TYPE_CHECKING:
    from mayuri.experiment.parse import parse_experiment


def __getattr__(name: str) -> Any:
    # The parser (and ruamel.yaml with it) loads on first use: a cached
    # `mayuri run` reuses the parsed file (`parsed_cache`) and never needs it.
    if name != "parse_experiment":
        raise AttributeError(f"module 'mayuri.experiment' has no attribute {name!r}")
    from mayuri.experiment.parse import parse_experiment

    return parse_experiment


__all__ = ["ExperimentSpec", "JobInstance", "JobSpec", "Override", "expand", "parse_experiment", "parse_override"]
