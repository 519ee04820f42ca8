"""The parsed experiment file: plain frozen dataclasses, with where each part was written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Where:
    """A place in a file, for error messages."""

    path: Path
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True)
class Dependency:
    """`depends_on: {upstream: {output: param}}` of one upstream job."""

    upstream: str
    mapping: dict[str, str]
    where: Where


@dataclass(frozen=True)
class ShardSpec:
    """`shards:` of a job: how many, and the files (a glob) they share out when given."""

    count: int
    files: str | None = None


REDUCE_KINDS = ("mean", "sum", "min", "max", "count", "concat", "weighted_mean")


@dataclass(frozen=True)
class Reduction:
    """One entry of `reduce:`: the name reduced, how, the weight of a weighted mean, whether it is a metric."""

    name: str
    kind: str
    weight: str | None = None
    metric: bool = False


@dataclass(frozen=True)
class JobSpec:
    """One job or test as written, before parameters are resolved."""

    name: str
    kind: str
    run: str | list[str]
    where: Where
    params: dict[str, Any] = field(default_factory=dict)
    # `defaults:` config group -> choice, and where each was written.
    defaults: dict[str, str] = field(default_factory=dict)
    defaults_where: dict[str, Where] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    python: str | None = None
    shell: bool = False
    inputs: tuple[str, ...] = ()
    cache: bool | float = True
    # `cache: strict`: every param in scope counts, used or not.
    strict: bool = False
    outputs: tuple[str, ...] = ()
    sweep: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[Dependency, ...] = ()
    gather: bool = False
    resources: dict[str, Any] = field(default_factory=dict)
    retry: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    expect: dict[str, str] = field(default_factory=dict)
    shards: ShardSpec | None = None
    reduce: tuple[Reduction, ...] = ()
    # A `pipeline:` step names another experiment file; it is replaced by that
    # file's jobs (namespaced `step/job`) before anything runs.
    pipeline: Path | None = None
    # Where "run", "env" and each "params.<key>" were written, for errors found later.
    positions: dict[str, Where] = field(default_factory=dict)
    # `metrics_from: {stdout: ...}`: regexes whose named groups turn printed lines into metrics.
    metrics_from: tuple[str, ...] = ()
    # `executor:` (the job's, else the file's): where it runs; None: the run's default executor.
    executor: str | None = None

    def at(self, part: str) -> Where:
        """Where `part` of this job was written (the job itself when unknown)."""
        return self.positions.get(part, self.where)


@dataclass(frozen=True)
class ExperimentSpec:
    """A whole experiment file after `extends` and top-level defaults are applied."""

    name: str
    path: Path
    jobs: dict[str, JobSpec]
    params: dict[str, Any] = field(default_factory=dict)
    # `defaults:` config group -> choice, and where each was written.
    defaults: dict[str, str] = field(default_factory=dict)
    defaults_where: dict[str, Where] = field(default_factory=dict)
