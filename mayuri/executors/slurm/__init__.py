"""The `slurm` executor: each attempt a Slurm job (or a task of a job array), submitted through submitit.

The head (a login node, or any machine that can submit) keeps the store,
plans and caches; only the attempts that must run are submitted. The node
runs the remote job contract's runner (`mayuri.executors.remote.runner`,
through `node.run_attempt`, pickled by submitit) in the head's run folder:
a filesystem the head and the nodes share is required (the usual case on a
cluster, and the only one supported). The node never opens the store: the
job spools its metrics and artifacts in the run folder, the head reads them.

- An attempt's reference is its Slurm job id (`123`, or `123_4` in an array):
  recovery, `cancel` and `doctor` ask Slurm about it (`states.py`) and
  `scancel` it.
- `[executor.slurm] array = true`: the attempts of one job that start in the
  same turn with the same request (a sweep) go in one job array (submitit's
  `map_array`); otherwise one Slurm job each.
- Slurm places GPUs (`places_gpus`): the head leases none, and the job sees
  the GPUs Slurm gave it (`node.py`), none when it asked for none.
- How it ended: the runner's `exit-N.json` when there is one (its exit code;
  the stderr tail then tells a CUDA OOM as for a local job); Slurm's state
  when the node could not write it or Slurm ended the job for a reason of its
  own (`PREEMPTED`/`NODE_FAIL` -> `node_lost`, `TIMEOUT` -> timeout,
  `OUT_OF_MEMORY` -> host OOM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.errors import ExecutorError
from mayuri.executors.base import AttemptRef, Executor, Exit, Handle, LaunchSpec, Point, Usage
from mayuri.executors.local.process import read_exit_record
from mayuri.executors.slurm.options import (
    SlurmSettings,
    array_key,
    parse_settings,
    sbatch_parameters,
)
from mayuri.executors.slurm.states import JobState, query

# Squeue is asked about every watched job at most this often.
REFRESH = 1.0
# How long an exit record may take to show on the head's side of the shared filesystem after Slurm
# says the job ended (NFS caches attributes a few seconds), and how long a job just submitted may be
# unknown to squeue.
RECORD_WAIT = 5.0
UNSEEN_WAIT = 30.0


@dataclass(kw_only=True)
class SlurmHandle(Handle):
    """A submitted attempt: its Slurm job id, where its exit record will be, what Slurm last said."""

    run_dir: Path
    attempt: int
    state: JobState | None = None
    # When it was submitted (monotonic clock, like the executor's other moments).
    submitted: float = field(default_factory=time.monotonic)
    # When Slurm was first seen to say it ended (the exit record is waited for a moment from then).
    ended_seen: float | None = None
    stopping: bool = False


class _NoUsage(Usage):
    """The node's processes cannot be sampled from the head: no system metrics (Slurm accounts for them)."""

    next_at = float("inf")


def _exit_from_record(record: Mapping[str, Any]) -> Exit:
    code = record.get("exit_code")
    code = int(code) if code is not None else 1
    cause = record.get("cause")
    known = cause if cause in ("host_oom", "start_failed") else None
    return Exit(code, max_rss=int(record.get("max_rss") or 0), leftovers=int(record.get("leftovers") or 0),
                cause=known, error=record.get("error") if known else None, node=record.get("node"))


class SlurmExecutor(Executor):
    """Attempts as Slurm jobs (see the module's docstring)."""

    name = "slurm"
    places_gpus = True
    spools = True

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.settings: SlurmSettings = parse_settings(self.options)
        self.poll_interval = 0.05
        self._watched: dict[str, SlurmHandle] = {}
        self._asked_at = float("-inf")
        self._default_time: str | None = None

    # -- before anything runs -------------------------------------------------

    def preflight(self, jobs: Sequence[Any], project_root: Path, store_root: Path) -> None:
        from mayuri.executors.slurm.preflight import check

        check(self.settings.partition)

    # -- submitting -----------------------------------------------------------

    def start(self, spec: LaunchSpec) -> Handle:
        result = self.start_many([spec])[0]
        if isinstance(result, ExecutorError):
            raise result
        return result

    def start_many(self, specs: Sequence[LaunchSpec]) -> list[Handle | ExecutorError]:
        groups: dict[Any, list[int]] = {}
        requests = []
        for index, spec in enumerate(specs):
            parameters = sbatch_parameters(self.settings, spec.resources, spec.timeout, spec.job or "job")
            requests.append(parameters)
            key = array_key(spec.job, parameters) if self.settings.array else index
            groups.setdefault(key, []).append(index)
        results: list[Handle | ExecutorError] = [ExecutorError("not submitted")] * len(specs)
        for indexes in groups.values():
            chosen = [specs[i] for i in indexes]
            try:
                ids = self._submit(chosen, requests[indexes[0]])
            except ExecutorError as exc:
                for i in indexes:
                    results[i] = exc
                continue
            for i, spec, job_id in zip(indexes, chosen, ids, strict=True):
                handle = SlurmHandle(job_id, run_dir=spec.run_dir, attempt=spec.attempt)
                self._watched[job_id] = handle
                results[i] = handle
        return results

    def _folder(self, spec: LaunchSpec) -> Path:
        # Default: beside the runs, in the store (which the nodes share).
        return self.settings.folder or spec.run_dir.parent.parent / "slurm"

    def _time_default(self) -> str:
        """The partition's default time limit, for a job whose limit nothing sets (submitit would say 5 min)."""
        if self._default_time is None:
            command = ["sinfo", "-h", "-o", "%L|%l"] + (["-p", self.settings.partition] if self.settings.partition
                                                         else [])
            try:
                out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False).stdout
            except (OSError, subprocess.TimeoutExpired):
                out = ""
            default, _, limit = (out.splitlines() or ["|"])[0].partition("|")
            chosen = default if default not in ("", "n/a") else limit
            self._default_time = "UNLIMITED" if chosen in ("", "n/a", "infinite") else chosen
        return self._default_time

    def _submit(self, specs: Sequence[LaunchSpec], parameters: dict[str, Any]) -> list[str]:
        """Submit attempts sharing one request (several: one job array); their Slurm job ids."""
        try:
            import submitit
        except ImportError:
            raise ExecutorError("the slurm executor needs submitit, which is not installed.",
                                hint="pip install 'mayuri[slurm]'") from None
        from mayuri.executors.remote.runner import make_spec
        from mayuri.executors.slurm.node import run_attempt

        parameters = dict(parameters)
        additional = dict(parameters.get("additional_parameters") or {})
        additional.setdefault("time", self._time_default())
        parameters["additional_parameters"] = additional
        if len(specs) > 1:
            parameters["array_parallelism"] = self.settings.array_parallelism
        payloads = [make_spec(command=s.command, shell=s.shell, cwd=s.cwd, env=s.env, run_dir=s.run_dir,
                              attempt=s.attempt, grace=s.grace) for s in specs]
        try:
            executor = submitit.SlurmExecutor(folder=self._folder(specs[0]), max_num_timeout=0)
            executor.update_parameters(**parameters)
            if len(specs) == 1:
                jobs = [executor.submit(run_attempt, payloads[0])]
            else:
                jobs = executor.map_array(run_attempt, payloads)
        except Exception as exc:  # noqa: BLE001 - sbatch's refusal (or submitit's) becomes the attempt's failure
            text = " ".join(str(exc).split())
            raise ExecutorError(f"Slurm refused the job: {text[:400]}") from None
        return [str(job.job_id) for job in jobs]

    # -- watching -------------------------------------------------------------

    def _refresh(self, now: float) -> None:
        if now - self._asked_at < REFRESH:
            return
        self._asked_at = now
        states = query(self._watched)
        for job_id, handle in self._watched.items():
            if job_id in states:
                handle.state = states[job_id]

    def poll(self, handle: Handle) -> Exit | None:
        assert isinstance(handle, SlurmHandle)
        now = time.monotonic()
        record = read_exit_record(handle.run_dir, handle.attempt)
        if record is not None:
            ended = _exit_from_record(record)
            if ended.code < 0 and not handle.stopping:
                # Killed from outside (Slurm's time limit, a preemption, its OOM kill): Slurm's state names why.
                slurm = self._slurm_end(handle)
                if slurm is not None:
                    ended = Exit(ended.code, ended.max_rss, ended.leftovers, cause=slurm.cause, error=slurm.error,
                                 node=ended.node)
            return self._forget(handle, ended)
        self._refresh(now)
        state = handle.state
        if state is None:
            if self._asked_at > handle.submitted + UNSEEN_WAIT:
                return self._forget(handle, Exit(1, cause="node_lost", error="Slurm lost the job (squeue and "
                                                                              "sacct no longer know it)"))
            return None
        if state.alive:
            return None
        if handle.ended_seen is None:
            handle.ended_seen = now
        if state.node and now - handle.ended_seen < RECORD_WAIT:
            # It ran on a node: its exit record may still be on its way through the shared filesystem.
            return None
        return self._forget(handle, self._ended_by_slurm(state))

    def _slurm_end(self, handle: SlurmHandle) -> Exit | None:
        """Slurm's reason for an end it caused, waiting a moment for its state to settle."""
        deadline = time.monotonic() + RECORD_WAIT
        while True:
            state = query([handle.ref]).get(handle.ref)
            if state is not None and not state.alive:
                cause = state.cause()
                return self._ended_by_slurm(state) if cause is not None and cause[0] != "cancelled" else None
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.2)

    @staticmethod
    def _ended_by_slurm(state: JobState) -> Exit:
        cause = state.cause()
        node = state.node or None
        if cause is None:
            # It ended on its own yet left no exit record: the runner did not get to write one.
            return Exit(state.exit_code(), status_lost=True, node=node)
        return Exit(state.exit_code() or -signal.SIGKILL, cause=cause[0], error=cause[1], node=node)

    def _forget(self, handle: SlurmHandle, ended: Exit) -> Exit:
        self._watched.pop(handle.ref, None)
        return ended

    def waiting(self, handle: Handle) -> str | None:
        assert isinstance(handle, SlurmHandle)
        state = handle.state
        if state is None or not state.queued:
            return None
        return f"queued in Slurm (job {handle.ref}: {state.state.lower()}" + (f", {state.reason})" if state.reason
                                                                               else ")")

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        time.sleep(min(timeout, max(self.poll_interval, 0.05)) if handles else timeout)

    # -- stopping -------------------------------------------------------------

    def stop(self, handle: Handle, *, force: bool = False) -> None:
        assert isinstance(handle, SlurmHandle)
        handle.stopping = True
        _scancel(handle.ref, force)

    def stop_and_wait(self, handle: Handle, grace: float) -> Exit:
        assert isinstance(handle, SlurmHandle)
        self.stop(handle)
        deadline = time.monotonic() + grace + RECORD_WAIT
        forced = False
        while True:
            ended = self.poll(handle)
            if ended is not None:
                return ended
            now = time.monotonic()
            if now >= deadline:
                if forced:
                    return self._forget(handle, Exit(-signal.SIGKILL, status_lost=True))
                _scancel(handle.ref, True)
                forced, deadline = True, now + RECORD_WAIT
            self._asked_at = float("-inf")
            time.sleep(0.2)

    # -- usage ----------------------------------------------------------------

    def usage(self, handle: Handle, now: float) -> Usage:
        return _NoUsage()

    def sample(self, due: Sequence[tuple[Handle, Usage]], now: float) -> list[list[Point]]:
        return [[] for _ in due]

    # -- recorded attempts ----------------------------------------------------

    def alive(self, attempt: AttemptRef) -> bool:
        if not attempt.ref:
            return False
        state = query([attempt.ref]).get(attempt.ref)
        return state is not None and state.alive

    def settle_orphan(self, attempt: AttemptRef, grace: float) -> list[int]:
        if attempt.ref:
            _scancel(attempt.ref, False)
        return []

    def ended(self, attempt: AttemptRef, wait: float) -> dict[str, Any] | None:
        # The node runner writes `exit-N.json` into the shared run folder as the job ends.
        if attempt.run_dir is None or attempt.number is None:
            return None
        deadline = time.monotonic() + wait
        while (record := read_exit_record(attempt.run_dir, attempt.number)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return record

    def capacity(self, wanted: str | list[int]) -> list[Any]:
        # Slurm places GPUs on its nodes; the head offers none of its own.
        return []


def _scancel(job_id: str, force: bool) -> None:
    command = ["scancel", *(["--signal=KILL", "--full"] if force else []), job_id]
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(command, capture_output=True, timeout=30, check=False, env=dict(os.environ))
