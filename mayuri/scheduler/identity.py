"""Who is alive: the identity of this host and of processes, as leases and recovery compare them.

RELIABILITY.md decision 4: a process recorded in the store is the same live
process only if host, boot id, pid and process create time all match; a bare
pid check is wrong once pids are reused. Nothing here touches the store.
"""

from __future__ import annotations

import os
import socket

import psutil

HOST_ENV = "MAYURI_HOST"
# Create times read through psutil are rounded differently over the years; allow a little slack.
CREATE_TIME_SLACK = 0.05


def host() -> str:
    """This host's name as leases record it (`MAYURI_HOST` overrides it, for containers and tests)."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


def boot_id() -> str:
    """An id that changes at every boot of this kernel (pids restart from scratch after one)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return f"boot-{psutil.boot_time():.0f}"


def create_time(pid: int) -> float | None:
    """When process `pid` started, or None when there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def same_process(pid: int | None, created: float | None, recorded_boot: str | None) -> bool:
    """Whether `pid` on this host is still the process that was recorded (same boot, same start)."""
    if pid is None or recorded_boot != boot_id():
        return False
    now = create_time(pid)
    if now is None:
        return False
    if created is None:
        # Without a recorded start, pid reuse cannot be ruled out: never assume it is ours.
        return False
    return abs(now - created) <= CREATE_TIME_SLACK
