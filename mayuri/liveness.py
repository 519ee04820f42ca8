"""Whether a scheduler recorded in the store is still alive (docs/decisions.md, decision 4).

On this host: the same boot, pid and process create time. On another host:
a heartbeat fresher than the lease TTL. Shared by recovery, `mayuri cancel`
and gc, none of which may otherwise depend on each other.
"""

from __future__ import annotations

import os
import time

from mayuri.process_identity import boot_id, host, same_process
from mayuri.store.scheduler_queries import SchedulerRow

LEASE_TTL_ENV = "MAYURI_LEASE_TTL"
DEFAULT_LEASE_TTL = 60.0


def lease_ttl() -> float:
    """How long a heartbeat from another host stays fresh (`MAYURI_LEASE_TTL` seconds)."""
    try:
        return float(os.environ.get(LEASE_TTL_ENV, DEFAULT_LEASE_TTL))
    except ValueError:
        return DEFAULT_LEASE_TTL


def scheduler_alive(row: SchedulerRow, now: float | None = None) -> bool:
    """Whether a scheduler recorded as running still is."""
    if row.host == host():
        return row.boot_id == boot_id() and same_process(row.pid, row.pid_create_time, row.boot_id)
    return (now or time.time()) - row.heartbeat_at < lease_ttl()
