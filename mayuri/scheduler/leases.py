"""One scheduler's standing in the store: its registration, heartbeat, and the GPU leases it takes.

A scheduler registers only when it is about to launch something: one whose
jobs were all cached never writes a registration (its only write is its
cache hits). The executor decides which GPUs fit (`Executor.place`); this
module takes them in one store transaction, fenced by the scheduler's id (so
two schedulers never both take the last free memory),
keeps the heartbeat going, and notices when another process has reclaimed
this scheduler (fencing: it must then stop its jobs and write nothing more).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Sequence

from mayuri.config import current_user
from mayuri.errors import ExecutorError, ExitCode
from mayuri.store.db import Store, StoreLocked
from mayuri.store.hit_log import fold_hits
from mayuri.store.lease_records import (
    Claim,
    Lease,
    acquire,
    end_scheduler,
    heartbeat,
    register_scheduler,
    release,
)
from mayuri.store.queries import reusable_among
from mayuri.store.records import record_hits

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
        self.experiment = experiment
        self.host = ""
        self.boot_id = ""
        self._id: str | None = None
        self.next_beat = 0.0
        self.last_beat = 0.0

    @property
    def registered(self) -> bool:
        return self._id is not None

    @property
    def id(self) -> str:
        """The scheduler's id in the store (also the token that fences its writes)."""
        if self._id is None:
            raise RuntimeError("the scheduler is used before it registered (LeaseKeeper.secure)")
        return self._id

    def secure(self, hits: Collection[str]) -> set[str]:
        """Register (the first time) and count cache hits, in one transaction; returns the hits lost.

        From that commit on, gc keeps every run counted here: it spares the
        reusable runs of an experiment that a live scheduler runs, and never
        collects a run used after its plan was made. A hit already collected
        by a gc that came first is not counted but returned, so that nothing
        that needs it is launched.
        """
        # Imported here: psutil, behind the process identity, is not needed by a run that launches nothing.
        from mayuri.process_identity import boot_id, create_time, host

        if self._id is None:
            self.host, self.boot_id = host(), boot_id()
        with self.store.write():
            # A transaction taken anyway: the right moment to empty the hit log too.
            fold_hits(self.store)
            kept = reusable_among(self.store, hits)
            record_hits(self.store, kept)
            sid = self._id or register_scheduler(
                self.store, host=self.host, boot_id=self.boot_id, pid=os.getpid(),
                pid_create_time=create_time(os.getpid()), user=current_user(), experiment=self.experiment,
            )
        if self._id is None:
            self._id = sid
            self.next_beat = time.monotonic() + HEARTBEAT_INTERVAL
            self.last_beat = time.time()
        return set(hits) - kept

    def beat_if_due(self, now: float) -> None:
        """Refresh the heartbeat when due; raises Fenced when the scheduler has been reclaimed."""
        if self._id is None or now < self.next_beat:
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

    def take(self, choose: Callable[[list[Lease]], list[Claim] | None]) -> list[Lease] | None:
        """The leases `choose` picks given the host's current leases (None: none fit now), in one transaction.

        What to pick is the executor's (`Executor.place`); writing the leases,
        fenced by this scheduler's id, is the scheduler's.
        """
        return acquire(self.store, scheduler_id=self.id, host=self.host, boot_id=self.boot_id, choose=choose)

    def give_back(self, leases: Sequence[Lease]) -> None:
        release(self.store, [lease.token for lease in leases])

    def close(self) -> None:
        """End the registration, if any (the scheduler's leases go with it)."""
        if self._id is not None:
            end_scheduler(self.store, self._id)
