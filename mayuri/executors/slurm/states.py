"""What Slurm says about its jobs, and what that means to Mayuri.

One `squeue` call asks about every job the head watches (finished jobs stay
in slurmctld's memory for `MinJobAge`, 300 s by default); a job squeue no
longer knows is asked of `sacct` (where the cluster keeps accounting).
`meaning` maps a Slurm state onto Mayuri's words: still queued (with Slurm's
reason), running, or ended with the cause Slurm knows (`node_lost`,
`timeout`, `host_oom`, `cancelled`); a job that completed or failed on its
own has its cause read from its exit record and stderr, as a local job's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

# Still to run, or running: the attempt is alive.
QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED",
          "STOPPED", "SIGNALING", "STAGE_OUT", "SPECIAL_EXIT", "RESV_DEL_HOLD", "REVOKED"}
RUNNING = {"RUNNING", "COMPLETING"}
# Ended by Slurm for a reason of its own: (cause, message).
CAUSES = {
    "PREEMPTED": ("node_lost", "preempted by Slurm"),
    "NODE_FAIL": ("node_lost", "its Slurm node failed"),
    "BOOT_FAIL": ("node_lost", "its Slurm node failed to boot"),
    "TIMEOUT": ("timeout", "reached its Slurm time limit"),
    "DEADLINE": ("timeout", "reached its Slurm deadline"),
    "OUT_OF_MEMORY": ("host_oom", "ran out of host memory (Slurm: OUT_OF_MEMORY)"),
    "CANCELLED": ("cancelled", "cancelled in Slurm (scancel)"),
}
# Ended on its own: its exit code says how.
FINISHED = {"COMPLETED", "FAILED"}

SQUEUE_FORMAT = "JobArrayID:|,State:|,Reason:|,NodeList:|,exit_code:|"


@dataclass(frozen=True)
class JobState:
    """One Slurm job (or array task) as squeue or sacct reported it."""

    state: str
    reason: str = ""
    node: str = ""
    # The job's wait status as Slurm packs it (exit code << 8 | signal), when known.
    status: int | None = None

    @property
    def alive(self) -> bool:
        return self.state in QUEUED or self.state in RUNNING

    @property
    def queued(self) -> bool:
        return self.state in QUEUED

    def exit_code(self) -> int:
        """The exit code as Mayuri records it (negative: killed by that signal), from Slurm's status."""
        if self.status is None:
            return 1
        signal_number = self.status & 0x7F
        return -signal_number if signal_number else self.status >> 8

    def cause(self) -> tuple[str, str] | None:
        """(cause, message) when Slurm ended the job for a reason of its own; None when it ended by itself."""
        return CAUSES.get(self.state.split()[0])


def _run(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def parse_squeue(text: str) -> dict[str, JobState]:
    """`squeue -O SQUEUE_FORMAT` lines, by job id (`123`, or `123_4` for an array task)."""
    found = {}
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 5 or not fields[0]:
            continue
        job_id, state, reason, node, status = fields[:5]
        found[job_id] = JobState(state, "" if reason in ("None", "(null)") else reason, node,
                                 int(status) if status.isdigit() else None)
    return found


def parse_sacct(text: str) -> dict[str, JobState]:
    """`sacct -P -n -o JobID,State,NodeList,ExitCode` lines: the jobs themselves, not their steps."""
    found = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 4 or "." in fields[0]:
            continue
        code, _, signal_number = fields[3].partition(":")
        status = (int(code) << 8 | int(signal_number or 0)) if code.isdigit() else None
        found[fields[0]] = JobState(fields[1].split()[0], "", fields[2], status)
    return found


def query(job_ids: Iterable[str]) -> dict[str, JobState]:
    """The state of each job Slurm still knows, in one squeue call (and one sacct call for the rest)."""
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    # Several ids at once, squeue lists those it knows and passes over the others; asked about one
    # unknown id alone it fails, so a lone id is asked twice.
    ids = wanted * 2 if len(wanted) == 1 else wanted
    listed = _run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(ids), "-O", SQUEUE_FORMAT])
    found = parse_squeue(listed or "")
    missing = [job for job in wanted if job not in found]
    if missing:
        accounted = _run(["sacct", "-P", "-n", "-X", "-j", ",".join(missing), "-o", "JobID,State,NodeList,ExitCode"])
        found.update({k: v for k, v in parse_sacct(accounted or "").items() if k in missing})
    return found
