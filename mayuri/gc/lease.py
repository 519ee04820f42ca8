"""The gc lease: at most one gc sweeps a store at a time (docs/decisions.md, decision 8).

The lease is a row in the store. A holder on this host is alive while its
process (same boot, pid and start time) lives; a holder elsewhere while its
heartbeat is fresh. A sweep renews the heartbeat as it goes and stops as soon
as it finds the lease taken from it. Planning (`--dry-run`) needs no lease.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from mayuri.config import current_user
from mayuri.errors import StoreError
from mayuri.process_identity import boot_id, create_time, host, same_process
from mayuri.store.db import Store
from mayuri.store.gc_records import LeaseHolder, drop_gc_lease, renew_gc_lease, take_gc_lease

# A holder on another host that has not renewed for this long is taken for dead.
LEASE_TTL = 300.0


class GcBusy(StoreError):
    """Another gc holds the store's gc lease."""

    title = "gc busy"


class LeaseLost(StoreError):
    """This gc's lease was reclaimed by another gc while it swept."""

    title = "gc lease lost"


def _stale(row: tuple) -> bool:
    _token, holder_host, holder_boot, pid, created, _user, _acquired, heartbeat = row
    if holder_host == host():
        return not same_process(pid, created, holder_boot)
    return time.time() - heartbeat > LEASE_TTL


class Lease:
    """A held gc lease; `check()` renews it and raises LeaseLost once it is no longer ours."""

    def __init__(self, store: Store, token: str) -> None:
        self.store = store
        self.token = token

    def check(self) -> None:
        if not renew_gc_lease(self.store, self.token):
            raise LeaseLost(
                "another gc reclaimed this gc's lease (this one looked dead); stopped sweeping.",
                hint="Nothing half-done was left: run `mayuri gc` again to finish.",
            )


@contextmanager
def gc_lease(store: Store) -> Iterator[Lease]:
    """Hold the store's gc lease for the duration of the block, or raise GcBusy."""
    me = LeaseHolder(
        token=uuid.uuid4().hex,
        host=host(),
        boot_id=boot_id(),
        pid=os.getpid(),
        pid_create_time=create_time(os.getpid()),
        user=current_user(),
    )
    holder = take_gc_lease(store, me, _stale)
    if holder is not None:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder[6]))
        raise GcBusy(
            f"another gc is sweeping this store (pid {holder[3]} on {holder[1]}, user {holder[5]}, "
            f"since {since}).",
            hint="Wait for it to finish and run gc again.",
        )
    try:
        yield Lease(store, me.token)
    finally:
        drop_gc_lease(store, me.token)
