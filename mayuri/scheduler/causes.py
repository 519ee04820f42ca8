"""Why an attempt ended: GPU out of memory, host out of memory, a signal, an exit code.

Classifies from the exit status, the tail of the attempt's stderr and the
cgroup's OOM-kill counter (docs/decisions.md "How a GPU out-of-memory shows
up"). Pure reading: deciding what to do about it is `mayuri.scheduler.retry`'s.
"""

from __future__ import annotations

import functools
import os
import re
import signal
from pathlib import Path

TAIL_BYTES = 64 * 1024
MEMORY_EVENTS_ENV = "MAYURI_MEMORY_EVENTS"

GPU_OOM = re.compile(
    "|".join([
        r"CUDA out of memory",
        r"\bOutOfMemoryError\b",
        r"CUBLAS_STATUS_ALLOC_FAILED",
        r"CUDNN_STATUS_ALLOC_FAILED",
        r"CUDNN_STATUS_EXECUTION_FAILED",
        r"CUDNN_STATUS_NOT_SUPPORTED",
        r"RESOURCE_EXHAUSTED: Out of memory",
        r"Cuda failure '?out of memory'?",
        r"ResourceExhaustedError: OOM when allocating",
        r"cudaErrorMemoryAllocation",
        r"HIP out of memory",
    ])
)
HOST_OOM = re.compile(
    r"DefaultCPUAllocator: can't allocate memory|^MemoryError\b|std::bad_alloc|Cannot allocate memory",
    re.MULTILINE,
)

# A blob write that filled the store's disk (mayuri.store.blobs.StoreFull), or any ENOSPC in the job.
DISK_FULL = re.compile(r"no space left on the device holding the store|\[Errno 28\] No space left on device")


def stderr_tail(path: Path, start: int = 0) -> str:
    """The last part of an attempt's stderr (from byte `start`, where this attempt began)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(start, size - TAIL_BYTES))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _events_file() -> Path | None:
    override = os.environ.get(MEMORY_EVENTS_ENV)
    if override:
        return Path(override)
    return _cgroup_events_file()


@functools.cache
def _cgroup_events_file() -> Path | None:
    # Read once: jobs run in the scheduler's own cgroup, which does not change
    # while it runs, and this is read at every launch.
    try:
        with open("/proc/self/cgroup", encoding="ascii") as handle:
            line = handle.readline().rstrip("\n")
    except OSError:
        return None
    # cgroup v2: a single "0::/path" line.
    if not line.startswith("0::"):
        return None
    return Path("/sys/fs/cgroup") / line[3:].lstrip("/") / "memory.events"


def oom_kill_count() -> int | None:
    """The cgroup's count of OOM kills so far (None when it cannot be read)."""
    path = _events_file()
    if path is None:
        return None
    try:
        with open(path, encoding="ascii") as handle:
            lines = handle.read().splitlines()
        for line in lines:
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def classify(code: int, tail: str, *, oom_kills_before: int | None, oom_kills_after: int | None) -> tuple[str, str]:
    """(cause, message) of a finished attempt that did not succeed on its own."""
    if GPU_OOM.search(tail):
        return "gpu_oom", "ran out of GPU memory"
    if code == -signal.SIGKILL:
        if oom_kills_before is not None and oom_kills_after is not None and oom_kills_after > oom_kills_before:
            return "host_oom", "killed by the host's OOM killer"
        return "host_oom_suspected", "killed by SIGKILL (likely the host's OOM killer)"
    if HOST_OOM.search(tail):
        return "host_oom", "ran out of host memory"
    if DISK_FULL.search(tail):
        return "disk_full", "no space left on the device holding the store (or the job's output folder)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return "signal", f"killed by {name}"
    last = last_line(tail)
    return "exit", f"exited with code {code}" + (f": {last}" if last else "")


def last_line(tail: str, limit: int = 200) -> str:
    """The last non-blank line of a job's stderr, shortened: usually the line that says why it failed."""
    for line in reversed(tail.splitlines()):
        if line.strip():
            text = line.strip()
            return text if len(text) <= limit else text[: limit - 1] + "…"
    return ""
