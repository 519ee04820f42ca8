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


@dataclass(frozen=True)
class Resources:
    """`resources:` of a job (the file's, then the job's, key by key), parsed: sizes in bytes."""

    gpus: float = 0
    gpu_memory: int | None = None
    cpus: float | None = None
    memory: int | None = None
    # What a node must have (Ray: custom resources of the nodes; Slurm: --constraint); ignored locally.
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A parsed file read back from its cache (JSON) gives a list.
        object.__setattr__(self, "labels", tuple(self.labels))

    def as_request(self) -> dict[str, Any]:
        """The keys given, as plain values: what an engine that places jobs itself is asked for."""
        request: dict[str, Any] = {"gpus": self.gpus} if self.gpus else {}
        for name in ("gpu_memory", "cpus", "memory"):
            if getattr(self, name) is not None:
                request[name] = getattr(self, name)
        if self.labels:
            request["labels"] = list(self.labels)
        return request


OOM_STRATEGIES = ("scale", "move", "wait")
DEFAULT_OOM_MAX = 3
DEFAULT_OOM_WAIT = 10.0


@dataclass(frozen=True)
class OomRetry:
    """`retry.oom`: how often a GPU out-of-memory is retried, and how (`strategy`)."""

    max: int = DEFAULT_OOM_MAX
    # `scale` (multiply `scale`'s params, never below `floor`), `move` (another GPU), `wait` (`wait` seconds).
    strategy: str = "wait"
    scale: dict[str, float] = field(default_factory=dict)
    # One floor for every scaled param, one per param, or None (integers stop at 1, floats at 0).
    floor: float | dict[str, float] | None = None
    wait: float = DEFAULT_OOM_WAIT


@dataclass(frozen=True)
class RetryPolicy:
    """`retry:` of a job (the file's, then the job's, key by key), parsed: durations in seconds."""

    failed: int = 0
    delay: float = 0.0
    oom: OomRetry | None = None


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
    resources: Resources = field(default_factory=Resources)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
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
