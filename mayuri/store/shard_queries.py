"""The shards of a sharded job as one group: how many of them are done (reads only).

Shard runs carry `{index, count, of}` in their config, `of` naming the job
instance they split; the reduction carries `{shards, of}`. The latest run of
each index counts: a shard that failed and then succeeded is done.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mayuri.store.db import Store

_DONE = ("succeeded",)


@dataclass(frozen=True)
class ShardProgress:
    """The shards of one sharded job instance, by the latest run of each index."""

    count: int
    # Index -> (run id, status) of its latest run.
    latest: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return sum(1 for _, status in self.latest.values() if status in _DONE)

    def indices(self, status: str) -> list[int]:
        """The shards whose latest run has `status`."""
        return sorted(i for i, (_, s) in self.latest.items() if s == status)

    def summary(self) -> str:
        """`6 of 8 done · failed: 3, 7 · running: 2`."""
        parts = [f"{self.done} of {self.count} done"]
        for status in ("failed", "running", "queued", "cancelled"):
            found = self.indices(status)
            if found:
                parts.append(f"{status}: " + ", ".join(map(str, found[:20])) + (" ..." if len(found) > 20 else ""))
        return " · ".join(parts)


def shard_group(config: dict[str, Any]) -> tuple[str, int] | None:
    """(group, shard count) of a shard or reduction run's config; None for any other run."""
    part = config.get("shard") or config.get("reduction")
    if not isinstance(part, dict) or "of" not in part:
        return None
    return str(part["of"]), int(part.get("count") or part.get("shards") or 0)


def shard_role(config: dict[str, Any]) -> str:
    """`shard 3 of 8`, or `reduction of 8 shards`."""
    part = config.get("shard")
    if isinstance(part, dict):
        return f"shard {part.get('index')} of {part.get('count')}"
    return f"reduction of {(config.get('reduction') or {}).get('shards')} shards"


def shard_progress(store: Store, experiment: str, job: str, config: dict[str, Any]) -> ShardProgress | None:
    """The progress of the shard group a run (shard or reduction, by its config) belongs to."""
    group = shard_group(config)
    if group is None:
        return None
    of, count = group
    rows = store.db.execute_sql(
        "SELECT json_extract(run.config, '$.shard.index'), run.id, run.status FROM run "
        "JOIN experiment ON experiment.id = run.experiment_id "
        "WHERE experiment.name = ? AND run.job = ? AND json_extract(run.config, '$.shard.of') = ? "
        "AND json_extract(run.config, '$.shard.count') = ? ORDER BY run.created_at",
        (experiment, job, of, count),
    ).fetchall()
    latest = {int(index): (run_id, status) for index, run_id, status in rows if index is not None}
    return ShardProgress(count, latest)


def outputs_of_runs(store: Store, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The outputs of many runs at once (runs without outputs are absent)."""
    found: dict[str, dict[str, Any]] = {}
    for run_id, name, value in store.select_in(
            "SELECT run_id, name, value FROM output WHERE run_id IN ({marks}) ORDER BY run_id, name", run_ids):
        found.setdefault(run_id, {})[name] = json.loads(value)
    return found
