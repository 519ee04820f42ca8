"""Waiting out a locked store while jobs are in flight.

A store write that cannot get the lock within `[store] busy_timeout` raises
StoreLocked. For a scheduler with jobs running, giving up would leave their
runs "running" with nobody to record them; so the writes that record jobs
are tried again, with a warning each time, for a bounded total time. A
long lock then only delays the records. This module only retries; what a
write does, and whom to warn, is the caller's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

from mayuri.store.db import StoreLocked

T = TypeVar("T")

PATIENCE_ENV = "MAYURI_RECORD_PATIENCE"
# Beyond the busy timeout each try already waited: long enough for a backup
# or a `VACUUM` by hand, short enough that a stuck lock is reported.
DEFAULT_PATIENCE = 600.0
RETRY_PAUSE = 0.1


def patience() -> float:
    """Seconds a scheduler keeps trying to record its jobs in a locked store."""
    try:
        return max(0.0, float(os.environ.get(PATIENCE_ENV, DEFAULT_PATIENCE)))
    except ValueError:
        return DEFAULT_PATIENCE


def patiently(write: Callable[[], T], warn: Callable[[float], None], limit: float | None = None) -> T:
    """`write()`, tried again while it raises StoreLocked, for at most `limit` seconds after the first refusal.

    `warn` is called before each new try with the seconds waited so far; the
    last StoreLocked is raised once the limit is spent.
    """
    began = time.monotonic()
    refused: float | None = None
    budget = patience() if limit is None else limit
    while True:
        try:
            return write()
        except StoreLocked:
            now = time.monotonic()
            if refused is None:
                refused = now
            if now - refused >= budget:
                raise
            warn(now - began)
            time.sleep(RETRY_PAUSE)
