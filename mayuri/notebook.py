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
from mayuri.experiment.overrides import flat_params
from mayuri.store.artifact_queries import artifacts_of
from mayuri.store.db import Store
from mayuri.store.metric_queries import Summary, metric_series, metric_summaries
from mayuri.store.queries import RunFilter, RunRow, lineage_of, list_runs, outputs_of
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
        pandas = _optional("pandas", "Series.to_pandas()")
        return pandas.Series(self.values, index=pandas.Index(self.steps, name="step"), name=self.key,
                             dtype="float64")

    def to_polars(self) -> Any:
        """A polars DataFrame with a `step` column and one column named after the metric (needs polars)."""
        polars = _optional("polars", "Series.to_polars()")
        return polars.DataFrame({"step": self.steps, self.key: self.values},
                                schema={"step": polars.Int64, self.key: polars.Float64})


def _optional(module: str, caller: str) -> Any:
    """An optional dependency of the notebook API, or an ImportError that says how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{caller} needs {module}: pip install 'mayuri[notebook]'.") from None


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
    def upstream(self) -> list[Run]:
        """The runs whose results this run used (its `depends_on`), one step up."""
        return [Run(self._store, _get_run_row(self._store, edge.run_id))
                for edge in lineage_of(self._store, self.id)[0]]

    @property
    def downstream(self) -> list[Run]:
        """The runs that used this run's results, one step down, oldest first."""
        return [Run(self._store, _get_run_row(self._store, edge.run_id))
                for edge in lineage_of(self._store, self.id)[1]]

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
    current: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    **param_filters: Any,
) -> list[Run]:
    """Runs of the project's store (found from the current folder), newest first.

    Filters: `experiment`, `status`, `job`, and params by value, either as
    keywords (`mayuri.runs(experiment="addition", lr=0.001)`) or, for dotted
    names, `params={"model.layers": 2}`. `store` names a store folder instead.
    `current="exp.yaml"` (with `overrides` as on the command line) gives instead the run
    each job of that file would reuse now, in the plan's order: what `mayuri run --dry-run`
    reports as cached.
    """
    if current is not None:
        return _current(Path(current), overrides or [])
    opened = _open(store)
    wanted = {**(params or {}), **param_filters}
    rows = list_runs(opened, RunFilter(experiment=experiment, job=job, status=status, limit=limit,
                                       params=wanted))
    return [Run(opened, row) for row in rows]


def _current(file: Path, overrides: list[str]) -> list[Run]:
    from mayuri.run_experiment import RunRequest, run_experiment
    from mayuri.scheduler.events import SilentReporter

    outcome = run_experiment(RunRequest(file=file, overrides=tuple(overrides), dry_run=True), SilentReporter()).outcome
    opened = _open(None)
    return [Run(opened, _get_run_row(opened, slot.run_id)) for slot in outcome.slots
            if slot.state == "cached" and slot.run_id]


def runs_frame(runs_or_filters: list[Run] | None = None, *, backend: str = "pandas", **filters: Any) -> Any:
    """A table of runs, one row each: id, experiment, job, status, times, every param (dotted names)
    and the last value of every metric (`metric/KEY`); pandas by default, `backend="polars"` for polars.

    Give a list of runs, or the filters `mayuri.runs` takes.
    """
    if backend not in ("pandas", "polars"):
        raise ValueError(f"runs_frame: backend must be 'pandas' or 'polars', not {backend!r}.")
    module = _optional(backend, "runs_frame()")
    chosen = runs(**filters) if runs_or_filters is None else runs_or_filters
    summaries = metric_summaries(chosen[0]._store, [r.id for r in chosen]) if chosen else {}
    rows = []
    for run in chosen:
        row: dict[str, Any] = {"id": run.id, "experiment": run.experiment, "job": run.job, "status": run.status,
                               "created_at": run.created_at, "duration": run.duration}
        row.update(flat_params(run.params))
        row.update({f"metric/{key}": s.last for key, s in summaries.get(run.id, {}).items()})
        rows.append(row)
    if backend == "polars":
        # Params of different types across runs (1 and "a") must not fail the frame: strict=False.
        return module.DataFrame(rows, strict=False, infer_schema_length=None)
    return module.DataFrame(rows)


def get_run(ref: str, *, store: str | os.PathLike[str] | None = None) -> Run:
    """One run by id or unique id prefix (like `mayuri show`)."""
    opened = _open(store)
    return Run(opened, _get_run_row(opened, ref))
