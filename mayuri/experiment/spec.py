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
class JobSpec:
    """One job or test as written, before parameters are resolved."""

    name: str
    kind: str
    run: str | list[str]
    where: Where
    params: dict[str, Any] = field(default_factory=dict)
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
    # A `pipeline:` step names another experiment file; it is replaced by that
    # file's jobs (namespaced `step/job`) before anything runs.
    pipeline: Path | None = None
    # Where "run", "env" and each "params.<key>" were written, for errors found later.
    positions: dict[str, Where] = field(default_factory=dict)

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
