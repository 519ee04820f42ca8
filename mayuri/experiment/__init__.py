"""The experiment language: loading YAML, checking it, and expanding it into job instances."""

from __future__ import annotations

from mayuri.experiment.expand import JobInstance, expand
from mayuri.experiment.overrides import Override, parse_override
from mayuri.experiment.parse import parse_experiment
from mayuri.experiment.spec import ExperimentSpec, JobSpec

__all__ = ["ExperimentSpec", "JobInstance", "JobSpec", "Override", "expand", "parse_experiment", "parse_override"]
