"""What one Ray task does on its node: run an attempt through the node runner and stream it back.

`attempt_task` is the body of the Ray task (a generator: each item it yields
reaches the head while the job runs). It

- makes the node's run folder: with `files = "copy"`, a folder of this node
  (`<tmp>/mayuri-ray-<user>/store/runs/<run id>`) into which the upstream
  run files the head sent are written, the head's paths being relocated to
  the node's (the store, and the project to the node's copy of it,
  `project_copy.node_copy`, held while the job runs); with `shared`, the
  head's own run folder;
- gives the job the GPUs Ray assigned, by UUID where the node can tell
  (NVML or MAYURI_FAKE_GPUS), with CUDA_DEVICE_ORDER=PCI_BUS_ID;
- prepares the launch as the node runner does (`remote.runner.prepare`:
  relocation, MAYURI_SPOOL, params.json) and runs the job through the local
  executor, whose shepherd is started once per Ray worker and kept while Ray
  reuses the worker (a launch costs a fork, not an interpreter start);
- every `interval` seconds yields what changed in the run folder (logs,
  spool, outputs, checkpoints; copy mode only), the job's CPU and memory
  being sampled into its spool every few seconds (`remote.runner.UsageSpool`,
  as on a Slurm node); at the end the digests of the closure's files (copy
  mode), then the exit record.

A Ray cancel arrives as KeyboardInterrupt: the job's whole process tree is
stopped as a local job's is (SIGTERM, the grace period, SIGKILL). If this
worker dies (its node lost, a forced cancel, its driver gone), its shepherd
sees its pipe close and kills the jobs it runs (MAYURI_SHEPHERD_KILL_ORPHANS);
the shepherd then runs one fork below the worker's child, out of reach of
Ray's killing of an exiting worker's direct children.
"""

from __future__ import annotations

import functools
import getpass
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mayuri.executors.local.shepherd import KILL_ORPHANS_ENV
from mayuri.executors.ray.project_copy import delete_unless_held, hold, node_copy
from mayuri.executors.remote.sync import FolderSync
from mayuri.run_contract import PARAMS_FILE, RUN_DIR_VAR, SPOOL_VAR

# Ray's own variable for the GPUs it assigned (indices on this node).
CUDA_VAR = "CUDA_VISIBLE_DEVICES"


@functools.cache
def node_store() -> Path:
    """Where copy mode keeps this node's run folders (its projects beside them)."""
    return Path(tempfile.gettempdir()) / f"mayuri-ray-{getpass.getuser()}" / "store"


@functools.cache
def _real(path: str) -> str:
    """The path with its links resolved (the folders a worker's jobs run under do not move)."""
    return os.path.realpath(path)


# This node's GPU UUIDs by index, read once per Ray worker (an inventory costs milliseconds, a task less;
# a node's GPUs do not change under a running worker).
_uuids_by_index: dict[str, str] | None = None


def _gpu_uuids(ids: list[Any]) -> list[str]:
    global _uuids_by_index
    if not ids:
        return []
    if _uuids_by_index is None:
        from mayuri.gpu import inventory

        try:
            devices = inventory()
        except Exception:  # noqa: BLE001 - no NVML here: Ray's indices are all there is
            devices = []
        _uuids_by_index = {str(d.index): d.uuid for d in devices if not d.is_mig}
    return [_uuids_by_index.get(str(i), str(i)) for i in ids]


def _place(spec: dict[str, Any], head_store: str, files: Mapping[str, bytes], project: Path | None) -> Path:
    """Relocate the spec to this node (copy mode) and write the upstream files; the node's run folder."""
    if project is None:
        return Path(spec["env"][RUN_DIR_VAR])
    store = node_store()
    spec["relocate"] = [[head_store, str(store)], [spec["cwd"], str(project)]]
    run_dir = store / "runs" / Path(spec["run_dir"]).name
    # This attempt's folder starts empty: the head holds what earlier attempts left.
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    for rel, data in files.items():
        target = store / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return run_dir


def attempt_task(spec: dict[str, Any], head_store: str, files: Mapping[str, bytes], digest: str | None,
                 package: Any, interval: float) -> Iterator[dict[str, Any]]:
    """The Ray task of one attempt (see the module's docstring). In copy mode, `digest` names the project's
    package and `package` holds it (`project_copy.Package.data`, as a buffer)."""
    import ray

    if digest is None:
        yield from _attempt(ray, spec, head_store, files, None, interval)
        return
    final = None
    with node_copy(node_store().parent / "projects", digest, package) as copy, _holding_runs(spec, files):
        messages = _attempt(ray, spec, head_store, files, copy, interval)
        for message in messages:
            if "exit" in message:
                # Held no longer before the last message: with it the head may end the run, and Ray this worker.
                final = message
                messages.close()
                break
            yield message
    if final is not None:
        yield final


@contextmanager
def _holding_runs(spec: Mapping[str, Any], files: Mapping[str, bytes]) -> Iterator[None]:
    """Hold the node's run folders the attempt uses (its own, and its upstreams' where their files were
    sent) while it runs; at its end, delete each that no other task holds. Everything in them has reached
    the head with the task's messages; a downstream task on this node writes its upstream's files into the
    upstream's folder, so a folder goes only when no task holds it."""
    runs = node_store() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    names = {Path(spec["run_dir"]).name} | {rel.split("/")[1] for rel in files if rel.startswith("runs/")
                                             and rel.count("/") >= 2}
    held = [hold(runs / f".{name}.lock") for name in sorted(names)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        for name in names:
            delete_unless_held(runs / f".{name}.lock", runs / name)


def _attempt(ray: Any, spec: dict[str, Any], head_store: str, files: Mapping[str, bytes], project: Path | None,
             interval: float) -> Generator[dict[str, Any], None, None]:
    from mayuri.executors.base import LaunchSpec
    from mayuri.executors.local import LocalExecutor
    from mayuri.executors.remote.runner import UsageSpool, prepare
    from mayuri.scheduler.causes import oom_kill_count

    copy = project is not None
    run_dir = _place(spec, head_store, files, project)
    gpus = _gpu_uuids(ray.get_gpu_ids())
    env = spec["env"]
    if gpus:
        env[CUDA_VAR] = ",".join(gpus)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    else:
        # Ray's own (empty) setting of this worker is not the job's.
        env.pop(CUDA_VAR, None)
        spec.setdefault("unset", []).append(CUDA_VAR)
    context = ray.get_runtime_context()
    # The node's paths of this attempt, for the head to move its closure records back to its own.
    moves = [[str(project), spec["cwd"]], [_real(str(project)), spec["cwd"]],
             [str(node_store()), head_store], [_real(str(node_store())), head_store]] if project is not None else []
    node = socket.gethostname()
    # Sent with the first message (a short job sends only one: where it ran, its files, its end).
    started: dict[str, Any] | None = {"started": {"node": node, "node_id": context.get_node_id(), "gpus": gpus,
                                                  "moves": moves}}
    argv, cwd, job_env, run_dir = prepare(spec)
    attempt, grace = int(spec["attempt"]), float(spec.get("grace", 10.0))
    # This worker's shepherd (started once, kept while Ray reuses the worker) runs the job, as the local
    # executor does; it kills the job if the worker dies (its node lost, a forced cancel).
    os.environ[KILL_ORPHANS_ENV] = "1"  # (never passed on to a job: remote.runner.MACHINERY)
    executor = LocalExecutor()
    oom_before = oom_kill_count()
    handle = executor.start(LaunchSpec(argv, False, Path(cwd), job_env, job_env.get("MAYURI_RUN_ID", ""), run_dir,
                                       attempt, grace))
    # params.json is the head's own (sent with the spec): it does not come back.
    sync = FolderSync(run_dir, skip=(PARAMS_FILE,)) if copy else None
    if gpus and started is not None:
        # Where it runs, at once: the head records the node and the GPUs while the job holds them.
        yield started
        started = None
    ended = None
    # The job's CPU and memory, into its spool as on any node (the head ingests them with its metrics).
    usage = UsageSpool(handle.pid, run_dir) if handle.pid is not None and job_env.get(SPOOL_VAR) else None
    try:
        while (ended := executor.poll(handle)) is None:
            # Woken by the job's end at once: a short job pays no interval.
            executor.wait([handle], interval)
            if usage is not None:
                usage.sample_if_due(time.monotonic())
            if sync is not None and (changes := sync.changes()):
                yield {**(started or {}), "files": changes}
                started = None
    finally:
        if ended is None:
            # Cancelled (KeyboardInterrupt) or the generator closed: the job's whole tree is stopped.
            ended = executor.stop_and_wait(handle, grace)
    record = {"exit_code": ended.code, "max_rss": ended.max_rss, "leftovers": ended.leftovers, "node": node}
    after = oom_kill_count()
    if ended.code < 0 and oom_before is not None and after is not None and after > oom_before:
        record["cause"] = "host_oom"
    products: list[Any] = []
    if copy and job_env.get("MAYURI_CLOSURE_DIR"):
        from mayuri.executors.remote.closure_check import node_digests, write_digests

        digests, made = node_digests(Path(job_env["MAYURI_CLOSURE_DIR"]), Path(cwd), [run_dir.parent.parent])
        write_digests(run_dir, attempt, digests)
        # The files the job made in its copy of the project go to the head's project, as a local job's stay.
        products = [(rel, -1, (Path(cwd) / rel).read_bytes()) for rel in made]
    last: list[Any] = []
    while sync is not None and (changes := sync.changes()):
        if last:
            yield {**(started or {}), "files": last}
            started = None
        last = changes
    yield {**(started or {}), "files": last, "products": products, "exit": record}
