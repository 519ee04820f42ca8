"""One scheduler's standing in the store: its registration, heartbeat, and the GPU leases it takes.

Placement decides which GPUs fit; this module takes them in one store
transaction (so two schedulers never both take the last free memory), keeps
the heartbeat going, and notices when another process has reclaimed this
scheduler (fencing: it must then stop its jobs and write nothing more).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

from mayuri.config import current_user
from mayuri.errors import ExecutorError, ExitCode
from mayuri.gpu import Gpu
from mayuri.process_identity import boot_id, create_time, host
from mayuri.scheduler.placement import Request, choose
from mayuri.store.db import Store, StoreLocked
from mayuri.store.lease_records import (
    Lease,
    acquire,
    end_scheduler,
    heartbeat,
    register_scheduler,
    release,
)

HEARTBEAT_INTERVAL = 1.0

log = logging.getLogger(__name__)


class Fenced(ExecutorError):
    """This scheduler was reclaimed by another process while it was stopped or cut off."""

    title = "scheduler reclaimed"
    exit_code = ExitCode.FAILED


class LeaseKeeper:
    """Registers a scheduler, beats its heart, and takes and gives back its GPU leases."""

    def __init__(self, store: Store, experiment: str | None) -> None:
        self.store = store
        self.host = host()
        self.boot_id = boot_id()
        self.id = register_scheduler(
            store, host=self.host, boot_id=self.boot_id, pid=os.getpid(), pid_create_time=create_time(os.getpid()),
            user=current_user(), experiment=experiment,
        )
        self.next_beat = time.monotonic() + HEARTBEAT_INTERVAL
        self.last_beat = time.time()

    def beat_if_due(self, now: float) -> None:
        """Refresh the heartbeat when due; raises Fenced when the scheduler has been reclaimed."""
        if now < self.next_beat:
            return
        self.next_beat = now + HEARTBEAT_INTERVAL
        try:
            alive = heartbeat(self.store, self.id)
        except StoreLocked:
            # Nobody can reclaim this scheduler while the store is locked either;
            # a late beat is harmless, and the next one is due soon.
            log.info("the store is locked; the scheduler's heartbeat is late")
            return
        if not alive:
            raise Fenced(f"scheduler {self.id[:8]} was reclaimed by another process while it was stopped; "
                         "its jobs were stopped and their results are not recorded here.")
        self.last_beat = time.time()

    def take(self, request: Request, devices: Sequence[Gpu], avoid: frozenset[str] = frozenset()) -> list[Lease] | None:
        """Leases for `request` on the best-fitting devices, or None when it does not fit now."""
        return acquire(
            self.store, scheduler_id=self.id, host=self.host, boot_id=self.boot_id,
            choose=lambda held: choose(request, devices, held, avoid),
        )

    def give_back(self, leases: Sequence[Lease]) -> None:
        release(self.store, [lease.token for lease in leases])

    def close(self) -> None:
        end_scheduler(self.store, self.id)
