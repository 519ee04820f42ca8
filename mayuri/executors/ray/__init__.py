"""The `ray` executor: each attempt that must run is one Ray task on the cluster; the store stays on the head.

The head (this process) plans, records and decides retries as for local
jobs. `start` submits the attempt as a Ray task (`node.attempt_task`, a
generator) with the job's `resources:` as Ray's request; Ray places it (and
its GPUs). On the node the task prepares the launch as the remote runner does and
runs the job through the local executor (same contract: bootstrap,
variables, params.json, process tree stopped as a whole), and yields, while the job runs, what changed in the node's run
folder (copy mode); a pump thread here writes those changes into the head's
run folder (so `mayuri logs -f` follows), the scheduler's `Ingester` reads
the spooled metrics and artifacts into the store (`spools`: this executor
never opens the store), and at the end the closure records are moved back to
the head's paths before the scheduler records the end.
docs/ray.md says how to start a cluster and what `copy` and `shared` cost.

Ray is imported only by `preflight` and `start`: a run the cache answers
whole never loads this module's engine.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mayuri.errors import ExecutorError
from mayuri.executors.base import AttemptRef, Executor, Exit, Handle, LaunchSpec, Point, Usage
from mayuri.executors.ray import connect
from mayuri.executors.ray.files import relocate_closure, relocate_outputs, upstream_files
from mayuri.executors.ray.project_copy import Excluded, excluded_globs, pack
from mayuri.executors.remote.closure_check import differing
from mayuri.executors.remote.runner import make_spec
from mayuri.executors.remote.sync import apply
from mayuri.run_contract import PARAMS_FILE, log_file

log = logging.getLogger(__name__)
# How often the node looks for changes in its run folder (the log and metric delay's main part).
SYNC_INTERVAL = 0.25


def _log_size(path: Path) -> int:
    """The size of a log before this attempt's output is appended (made empty: `logs -f` finds it at once)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


@dataclass(kw_only=True)
class RayHandle(Handle):
    """A Ray attempt: its task (a generator of the node's messages) and what the head learned of it."""

    generator: Any
    run_id: str
    run_dir: Path
    copy: bool
    # The head's log sizes when the attempt started: the node's logs of this attempt go after them.
    bases: dict[str, int] = field(default_factory=dict)
    node_id: str | None = None
    # (node path, head path) pairs of the attempt's closure records (copy mode).
    moves: list[tuple[str, str]] = field(default_factory=list)
    exit: Exit | None = None
    stopping: bool = False
    project: Path = Path()
    attempt: int = 1


class RayExecutor(Executor):
    """Jobs as Ray tasks (see the module's docstring)."""

    name = "ray"
    places_gpus = True
    spools = True

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.poll_interval = 0.05
        self._ray: Any = None
        self._handles: list[RayHandle] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._task: Any = None
        # (digest, object ref) of the project's package in copy mode; (None, None) when the nodes share the files.
        self._project: tuple[str | None, Any] = (None, None)

    # -- connecting -------------------------------------------------------------

    def preflight(self, jobs: Sequence[Any], project_root: Path, store_root: Path) -> None:
        address, _, _ = connect.options_of(self.options)
        ray = self._connect(project_root, store_root)
        connect.check_feasible(ray, [(inst.key, inst.job.resources.as_request()) for inst in jobs], address)

    def _connect(self, project_root: Path, store_root: Path) -> Any:
        if self._ray is None:
            _, files, exclude = connect.options_of(self.options)
            # Packed before connecting: a project too large to ship is refused without touching the cluster.
            package = pack(project_root, Excluded(excluded_globs(project_root, store_root, exclude))) \
                if files == "copy" else None
            ray = connect.connect(self.options)
            from mayuri.executors.ray.node import attempt_task

            self._task = ray.remote(max_retries=0)(attempt_task)
            # Its object is kept while this run lasts (this process owns it); as a pickle buffer, a task gets
            # it without a copy of its bytes.
            self._project = (package.digest, ray.put(pickle.PickleBuffer(package.data))) \
                if package is not None else (None, None)
            self._ray = ray
        return self._ray

    # -- starting -----------------------------------------------------------------

    def start(self, spec: LaunchSpec) -> Handle:
        store_root = spec.run_dir.parent.parent
        self._connect(spec.cwd, store_root)
        copy = self._project[0] is not None
        params = json.loads((spec.run_dir / PARAMS_FILE).read_text(encoding="utf-8")) if copy else None
        # The node's own environment, with what Mayuri and the job change in it: the head's PATH or HOME
        # mean nothing on another machine (and only the difference travels with each task).
        runner_spec = make_spec(command=spec.command, shell=spec.shell, cwd=spec.cwd, env=spec.env,
                                run_dir=spec.run_dir, attempt=spec.attempt, grace=spec.grace, params=params,
                                inherit=True)
        shipped = upstream_files(runner_spec, store_root, spec.run_dir) if copy else {}
        bases = {name: _log_size(log_file(spec.run_dir, name.removesuffix(".log")))
                 for name in ("stdout.log", "stderr.log")} if copy else {}
        try:
            generator = self._task.options(**connect.request_of(spec.resources)).remote(
                runner_spec, str(store_root), shipped, *self._project, SYNC_INTERVAL)
        except Exception as exc:  # noqa: BLE001 - Ray's errors have no common base worth naming here
            raise ExecutorError(f"cannot submit the job to Ray: {exc}") from None
        ref = generator._generator_ref.task_id().hex()
        handle = RayHandle(ref, time.time(), (), generator=generator, run_id=spec.run_id, run_dir=spec.run_dir,
                           copy=copy, bases=bases, project=spec.cwd, attempt=spec.attempt)
        with self._changed:
            self._handles.append(handle)
            self._changed.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._pump, name="mayuri-ray", daemon=True)
                self._thread.start()
        return handle

    # -- the pump: the nodes' messages, into the head's run folders -------------------

    def _pump(self) -> None:
        ray = self._ray
        while True:
            with self._changed:
                live = [h for h in self._handles if h.exit is None]
                if not live:
                    self._changed.wait(0.5)
                    continue
            generators = [h.generator for h in live]
            try:
                # Woken by the first task with something to say, then every other one that has something too.
                ready, _ = ray.wait(generators, num_returns=1, timeout=0.1, fetch_local=True)
                if ready and len(live) > 1:
                    ready, _ = ray.wait(generators, num_returns=len(live), timeout=0, fetch_local=True)
            except Exception as exc:  # noqa: BLE001 - the cluster hiccuped: each task is asked on its own below
                log.warning("waiting for Ray tasks failed: %s", exc)
                time.sleep(0.5)
                ready = generators
            chosen = {id(g) for g in ready}
            for handle in live:
                if id(handle.generator) in chosen:
                    self._take(handle)

    def _take(self, handle: RayHandle) -> None:
        """Read every message of the handle's task that is ready."""
        ray = self._ray
        while handle.exit is None:
            try:
                ref = handle.generator._next_sync(timeout_s=0)
            except StopIteration:
                self._ended(handle, Exit(255, status_lost=True))
                return
            except Exception as exc:  # noqa: BLE001 - the task failed: how, the error says
                self._ended(handle, self._lost(handle, exc))
                return
            if ref.is_nil():
                return  # nothing more yet
            try:
                message = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the task failed: how, the error says
                self._ended(handle, self._lost(handle, exc))
                return
            self._hear(handle, message)

    def _hear(self, handle: RayHandle, message: dict[str, Any]) -> None:
        # A message holds any of these, in this order: where it runs, files of its run folder that changed,
        # the files it made in the project (at its end, copy mode), its end.
        if "started" in message:
            started = message["started"]
            handle.node, handle.node_id = started.get("node"), started.get("node_id")
            handle.gpus = tuple(started.get("gpus") or ())
            handle.moves = [(old, new) for old, new in started.get("moves") or []]
        if message.get("files"):
            apply(handle.run_dir, message["files"], handle.bases)
        if message.get("products"):
            apply(handle.project, message["products"])
        if "exit" in message:
            self._ended(handle, _exit_of(message["exit"]))

    def _lost(self, handle: RayHandle, exc: BaseException) -> Exit:
        ray = self._ray
        if handle.stopping or isinstance(exc, ray.exceptions.TaskCancelledError):
            return Exit(-15)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, ray.exceptions.RayTaskError) and not isinstance(exc, ray.exceptions.WorkerCrashedError):
            return Exit(255, cause="executor_error", error=f"the Ray task failed: {first}")
        where = f" ({handle.node})" if handle.node else ""
        return Exit(255, cause="node_lost", error=f"node lost{where}: {type(exc).__name__}: {first}"[:300])

    def _ended(self, handle: RayHandle, ended: Exit) -> None:
        """Put what the attempt left in place (closure paths back to the head's), then tell of its end."""
        try:
            if handle.moves:
                relocate_closure(handle.run_dir, handle.moves)
                relocate_outputs(handle.run_dir, handle.moves)
            if handle.copy:
                changed = differing(handle.run_dir, handle.attempt, handle.project)
                if changed:
                    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
                    ended = replace(ended, unreusable=f"not reusable: {shown} on {handle.node or 'the node'} "
                                                      "differed from the head's")
        except Exception as exc:  # noqa: BLE001 - the end must still be told; the run's stderr says what went wrong
            log.warning("run %s: reading what its node sent failed: %s", handle.run_id[:8], exc)
        with self._changed:
            handle.exit = ended
            self._changed.notify_all()

    # -- the scheduler's questions ---------------------------------------------------

    def poll(self, handle: Handle) -> Exit | None:
        assert isinstance(handle, RayHandle)
        return handle.exit

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        with self._changed:
            if not any(isinstance(h, RayHandle) and h.exit is not None for h in handles):
                self._changed.wait(timeout)

    def stop(self, handle: Handle, *, force: bool = False) -> None:
        assert isinstance(handle, RayHandle)
        if handle.exit is not None:
            return
        handle.stopping = True
        try:
            self._ray.cancel(handle.generator, force=force)
        except Exception as exc:  # noqa: BLE001 - already ended or gone: the pump learns how
            log.debug("ray cancel of %s: %s", handle.ref, exc)

    def stop_and_wait(self, handle: Handle, grace: float) -> Exit:
        assert isinstance(handle, RayHandle)
        self.stop(handle)
        deadline = time.monotonic() + grace
        with self._changed:
            while handle.exit is None and time.monotonic() < deadline:
                self._changed.wait(0.1)
        if handle.exit is None:
            self.stop(handle, force=True)
            deadline = time.monotonic() + 30
            with self._changed:
                while handle.exit is None and time.monotonic() < deadline:
                    self._changed.wait(0.1)
        return handle.exit or Exit(-9, status_lost=True)

    def usage(self, handle: Handle, now: float) -> Usage:
        usage = Usage()
        # Sampled on the node into the run's spool (`remote.runner.UsageSpool`), which the scheduler's
        # Ingester reads; the peak RSS comes with the exit record.
        usage.next_at = float("inf")
        return usage

    def sample(self, due: Sequence[tuple[Handle, Usage]], now: float) -> list[list[Point]]:
        return [[] for _ in due]

    def alive(self, attempt: AttemptRef) -> bool:
        # A Ray task belongs to the driver that submitted it: when that scheduler died, Ray stopped its
        # tasks (and their runners stopped the jobs), so an attempt of a dead scheduler is never alive.
        return False

    def settle_orphan(self, attempt: AttemptRef, grace: float) -> list[int]:
        return []

    def capacity(self, wanted: str | list[int]) -> list[Any]:
        # Ray places the jobs on the cluster's GPUs: the scheduler leases none of this machine's.
        return []


def _exit_of(record: dict[str, Any]) -> Exit:
    """The Exit of the runner's exit record (`exit-N.json`)."""
    code = record.get("exit_code")
    code = int(code) if isinstance(code, int) else 255
    cause = record.get("cause")
    node = record.get("node") or "its node"
    max_rss, leftovers = int(record.get("max_rss") or 0), int(record.get("leftovers") or 0)
    if cause == "host_oom":
        return Exit(code, max_rss, leftovers, cause="host_oom", error=f"killed by the OOM killer of {node}")
    if cause in ("start_failed", "runner_failed"):
        return Exit(code, max_rss, leftovers, cause="exit", error=str(record.get("error") or cause)[:500])
    return Exit(code, max_rss, leftovers)
