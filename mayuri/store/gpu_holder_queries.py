"""Read-only: which Mayuri runs hold which GPUs right now (for the dashboard's GPU screen).

The scheduler's leases (schema 0004 on) say it exactly, with the memory each
run reserved; on an older store the GPUs recorded by running attempts stand in.
Nothing here writes, and nothing here asks NVML: that is `mayuri.gpu`'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mayuri.store.db import Store
from mayuri.store.scheduler_queries import leases


@dataclass(frozen=True)
class GpuHolder:
    """One run holding (part of) a GPU."""

    gpu: str
    """The GPU's UUID (or whatever id the attempt recorded)."""
    run_id: str | None
    experiment: str | None
    job: str | None
    host: str | None
    memory: int | None
    """Bytes reserved by the lease; None when only the attempt is known."""


def _names(store: Store, run_ids: set[str]) -> dict[str, tuple[str | None, str | None]]:
    if not run_ids:
        return {}
    ids = sorted(run_ids)
    rows = store.db.execute_sql(
        "SELECT run.id, experiment.name, run.job FROM run JOIN experiment ON experiment.id = run.experiment_id "
        f"WHERE run.id IN ({','.join('?' * len(ids))})", tuple(ids),
    ).fetchall()
    return {rid: (experiment, job) for rid, experiment, job in rows}


def gpu_holders(store: Store) -> list[GpuHolder]:
    """Every current GPU claim by a Mayuri run, leases first."""
    claims: list[tuple[str, str | None, str | None, int | None]] = []
    claims += [(lease.gpu_uuid, lease.run_id, lease.host, lease.memory) for lease in leases(store)]
    leased = {(gpu, rid) for gpu, rid, _, _ in claims}
    rows = store.db.execute_sql(
        # A job an engine placed on another machine (a Ray node) holds that machine's GPUs.
        "SELECT gpus, run_id, COALESCE(node, host) FROM attempt WHERE status = 'running' AND gpus <> '[]' "
        "ORDER BY started_at"
    ).fetchall()
    for gpus, rid, host in rows:
        claims += [(str(g), rid, host, None) for g in json.loads(gpus) if (str(g), rid) not in leased]
    names = _names(store, {rid for _, rid, _, _ in claims if rid})
    holders = []
    for gpu, rid, host, memory in claims:
        experiment, job = names.get(rid or "", (None, None))
        holders.append(GpuHolder(gpu, rid, experiment, job, host, memory))
    return holders
