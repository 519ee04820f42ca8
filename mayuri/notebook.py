"""Reading runs back in notebooks and scripts: `mayuri.runs(...)`, `run.metrics(key)`, `run.best(key)`.

A thin, read-only face over the store's named queries (`mayuri.store.queries`,
`metric_queries`, `artifact_queries`). Summaries answer `best` without reading
points; `metrics` reads one series. The only thing written is the on-demand
copy of an artifact's files into its run folder (`run.artifact(name)`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayuri.config import load_settings
from mayuri.store.artifact_queries import artifacts_of
from mayuri.store.db import Store
from mayuri.store.metric_queries import Summary, metric_series, metric_summaries
from mayuri.store.queries import RunFilter, RunRow, list_runs, outputs_of
from mayuri.store.queries import get_run as _get_run_row
from mayuri.tracking.artifacts import materialize, process_store


@dataclass(frozen=True)
class Series:
    """One metric of one run: `steps` and `values` of equal length, in step order (NaN kept)."""

    key: str
    steps: list[int]
    values: list[float]

    def __len__(self) -> int:
        return len(self.steps)

    def to_pandas(self) -> Any:
        """A pandas Series of the values indexed by step (needs pandas installed)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Series.to_pandas() needs pandas: pip install 'mayuri[notebook]'.") from None
        return pandas.Series(self.values, index=pandas.Index(self.steps, name="step"), name=self.key,
                             dtype="float64")


class Run:
    """A run as read from the store (a snapshot: call `mayuri.runs` again for fresh status)."""

    def __init__(self, store: Store, row: RunRow) -> None:
        self._store = store
        self._row = row
        self.id = row.id
        self.experiment = row.experiment
        self.job = row.job
        self.kind = row.kind
        self.status = row.status
        self.params: dict[str, Any] = row.params
        self.created_at = row.created_at
        self.started_at = row.started_at
        self.ended_at = row.ended_at
        self.duration = row.duration
        self.run_dir = Path(row.run_dir)

    def __repr__(self) -> str:
        return f"<Run {self.id[:8]} {self.experiment}/{self.job} {self.status} {self.params}>"

    @property
    def outputs(self) -> dict[str, Any]:
        """What the job set with `mayuri.output`."""
        return outputs_of(self._store, self.id)

    @property
    def summary(self) -> dict[str, Summary]:
        """Every metric's summary (last, min, max, count and their steps), by key."""
        return metric_summaries(self._store, [self.id]).get(self.id, {})

    def metrics(self, key: str, max_points: int | None = None) -> Series:
        """The series of metric `key` (downsampled to about `max_points` when given)."""
        steps, values = metric_series(self._store, self.id, key, max_points)
        if not steps and key not in self.summary:
            raise KeyError(self._missing(key))
        return Series(key, steps, values)

    def best(self, key: str, mode: str = "min") -> float:
        """The lowest (`mode="min"`) or highest (`mode="max"`) value of metric `key`."""
        found = self.summary.get(key)
        if found is None:
            raise KeyError(self._missing(key))
        return found.best(mode)

    def _missing(self, key: str) -> str:
        known = ", ".join(self.summary) or "none"
        return f"run {self.id[:8]} has no metric {key!r} (it has: {known})."

    @property
    def artifacts(self) -> list[str]:
        """The names of the run's artifacts."""
        return [a.name for a in artifacts_of(self._store, self.id)]

    def artifact(self, name: str) -> Path:
        """A path to artifact `name` as real files (a file, or a folder for folders and checkpoints)."""
        return materialize(self._store, self.id, name)


def _open(store: str | os.PathLike[str] | None) -> Store:
    if store is not None:
        return process_store(Path(store).resolve())
    settings = load_settings()
    return process_store(settings.store.path, allow_network_fs=settings.store.allow_network_fs,
                         busy_timeout=settings.store.busy_timeout)


def runs(
    experiment: str | None = None,
    status: str | None = None,
    job: str | None = None,
    *,
    params: dict[str, Any] | None = None,
    limit: int | None = None,
    store: str | os.PathLike[str] | None = None,
    **param_filters: Any,
) -> list[Run]:
    """Runs of the project's store (found from the current folder), newest first.

    Filters: `experiment`, `status`, `job`, and params by value, either as
    keywords (`mayuri.runs(experiment="addition", lr=0.001)`) or, for dotted
    names, `params={"model.layers": 2}`. `store` names a store folder instead.
    """
    opened = _open(store)
    wanted = {**(params or {}), **param_filters}
    rows = list_runs(opened, RunFilter(experiment=experiment, job=job, status=status, limit=limit,
                                       params=wanted))
    return [Run(opened, row) for row in rows]


def get_run(ref: str, *, store: str | os.PathLike[str] | None = None) -> Run:
    """One run by id or unique id prefix (like `mayuri show`)."""
    opened = _open(store)
    return Run(opened, _get_run_row(opened, ref))
