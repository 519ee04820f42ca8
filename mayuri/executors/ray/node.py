"""What one Ray task does on its node: run an attempt through the node runner and stream it back.

`attempt_task` is the body of the Ray task (a generator: each item it yields
reaches the head while the job runs). It

- makes the node's run folder: with `files = "copy"`, a folder of this node
  (`<tmp>/mayuri-ray-<user>/store/runs/<run id>`) into which the upstream
  run files the head sent are written, the head's paths being relocated to
  the node's (the store, and the project to Ray's copy of it, the task's
  working folder); with `shared`, the head's own run folder;
- gives the job the GPUs Ray assigned, by UUID where the node can tell
  (NVML or MAYURI_FAKE_GPUS), with CUDA_DEVICE_ORDER=PCI_BUS_ID;
- runs `python -m mayuri.executors.remote.runner -` and, every `interval`
  seconds, yields what changed in the run folder (logs, spool, outputs,
  checkpoints; copy mode only), then the exit record.

A Ray cancel arrives as KeyboardInterrupt: the runner is sent SIGTERM (it
stops the job's process group, SIGKILL after the grace period). If this
worker is killed outright, the runner's parent-death signal does the same at
once.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mayuri.executors.remote.sync import FolderSync
from mayuri.run_contract import RUN_DIR_VAR, exit_record

# Ray's own variable for the GPUs it assigned (indices on this node).
CUDA_VAR = "CUDA_VISIBLE_DEVICES"


def node_store() -> Path:
    """Where copy mode keeps this node's run folders."""
    return Path(tempfile.gettempdir()) / f"mayuri-ray-{getpass.getuser()}" / "store"


def _gpu_uuids(ids: list[Any]) -> list[str]:
    from mayuri.gpu import inventory

    try:
        devices = inventory()
    except Exception:  # noqa: BLE001 - no NVML here: Ray's indices are all there is
        devices = []
    by_index = {str(d.index): d.uuid for d in devices if not d.is_mig}
    return [by_index.get(str(i), str(i)) for i in ids]


def _place(spec: dict[str, Any], head_store: str, files: Mapping[str, bytes], copy: bool) -> Path:
    """Relocate the spec to this node (copy mode) and write the upstream files; the node's run folder."""
    if not copy:
        return Path(spec["env"][RUN_DIR_VAR])
    store = node_store()
    spec["relocate"] = [[head_store, str(store)], [spec["cwd"], os.getcwd()]]
    run_dir = store / "runs" / Path(spec["run_dir"]).name
    # This attempt's folder starts empty: the head holds what earlier attempts left.
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    for rel, data in files.items():
        target = store / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return run_dir


def attempt_task(spec: dict[str, Any], head_store: str, files: Mapping[str, bytes], copy: bool,
                 interval: float) -> Iterator[dict[str, Any]]:
    """The Ray task of one attempt (see the module's docstring)."""
    import ray

    run_dir = _place(spec, head_store, files, copy)
    gpus = _gpu_uuids(ray.get_gpu_ids())
    env = spec["env"]
    if gpus:
        env[CUDA_VAR] = ",".join(gpus)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    else:
        env.pop(CUDA_VAR, None)
    spec["parent_death"] = True
    context = ray.get_runtime_context()
    # The node's paths of this attempt, for the head to move its closure records back to its own.
    moves = [[os.getcwd(), spec["cwd"]], [os.path.realpath(os.getcwd()), spec["cwd"]],
             [str(node_store()), head_store], [os.path.realpath(node_store()), head_store]] if copy else []
    yield {"started": {"node": socket.gethostname(), "node_id": context.get_node_id(), "gpus": gpus,
                       "moves": moves}}
    runner = subprocess.Popen([sys.executable, "-m", "mayuri.executors.remote.runner", "-"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    assert runner.stdin is not None
    runner.stdin.write(json.dumps(spec).encode())
    runner.stdin.close()
    sync = FolderSync(run_dir) if copy else None
    try:
        while runner.poll() is None:
            # Woken by the runner's end at once: a short job pays no interval.
            with contextlib.suppress(subprocess.TimeoutExpired):
                runner.wait(interval)
            if sync is not None:
                changes = sync.changes()
                if changes:
                    yield {"files": changes}
        if sync is not None:
            while changes := sync.changes():
                yield {"files": changes}
    finally:
        if runner.poll() is None:
            # Cancelled (KeyboardInterrupt) or the generator closed: stop the job, as the runner does.
            runner.send_signal(signal.SIGTERM)
            try:
                runner.wait(float(spec.get("grace", 10.0)) + 30)
            except subprocess.TimeoutExpired:
                runner.send_signal(signal.SIGHUP)
                runner.wait()
    record = _record(run_dir, int(spec["attempt"]))
    if record is None:
        problem = runner.stderr.read().decode("utf-8", "replace")[-2000:] if runner.stderr else ""
        record = {"exit_code": runner.returncode, "cause": "runner_failed", "error": problem.strip()}
    yield {"exit": record}


def _record(run_dir: Path, attempt: int) -> dict[str, Any] | None:
    try:
        loaded = json.loads(exit_record(run_dir, attempt).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None
