"""Who is alive: the identity of this host and of processes, as leases and recovery compare them.

docs/decisions.md, decision 4: a process recorded in the store is the same live
process only if host, boot id, pid and process create time all match; a bare
pid check is wrong once pids are reused. Nothing here touches the store.
"""

from __future__ import annotations

import functools
import os
import socket

HOST_ENV = "MAYURI_HOST"
# Create times read through psutil are rounded differently over the years; allow a little slack.
CREATE_TIME_SLACK = 0.05
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_HAS_PROC = os.path.exists("/proc/self/stat")


def host() -> str:
    """This host's name as leases record it (`MAYURI_HOST` overrides it, for containers and tests)."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


def boot_id() -> str:
    """An id that changes at every boot of this kernel (pids restart from scratch after one)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        import psutil  # only where there is no /proc: loading it costs every start-up

        return f"boot-{psutil.boot_time():.0f}"


@functools.cache
def _boot_time() -> float:
    import psutil

    return float(psutil.boot_time())


def ticks_to_time(ticks: int) -> float:
    """A process start time from its starttime field of /proc/PID/stat (clock ticks after boot)."""
    return ticks / _CLOCK_TICKS + _boot_time()


def create_time(pid: int) -> float | None:
    """When process `pid` started, or None when there is no such process.

    The same figure as psutil's (the kernel's start time in clock ticks after
    boot, plus the boot time), read with one system call: it is taken at
    every launch.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
        # Fields after the command name (which may hold spaces and parentheses); starttime is the 22nd.
        return ticks_to_time(int(stat[stat.rindex(b")") + 2:].split()[19]))
    except FileNotFoundError:
        if _HAS_PROC:
            return None
    except (OSError, ValueError, IndexError):
        pass
    import psutil

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
