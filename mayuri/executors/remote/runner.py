"""The node runner: one attempt of a job on a remote node, under the same contract as on the head.

`python -m mayuri.executors.remote.runner SPEC.json` (or `-`: the spec on
stdin), where the spec is what `make_spec` builds on the head from the
attempt's `LaunchSpec`. The runner

- moves the head's paths to the node's (`relocate`: the project's working
  copy, the run folder, Mayuri's own package for the closure bootstrap) in
  the command, its folder and its environment, and sets MAYURI_SPOOL, so that
  the job side spools metrics and artifacts instead of opening the store;
- writes `params.json` into the node's run folder (when the spec carries the
  params: a run folder the head does not share);
- starts the command like the local executor does, through the shepherd's
  code (`mayuri.executors.local.shepherd`): in a session of its own, stdout
  and stderr appended to the run folder's logs, leftovers stopped at the end;
- on SIGTERM (or SIGINT) stops the job's whole process group: SIGTERM, the
  grace period, SIGKILL to the group and to every process that carries the
  run's id; on SIGHUP, or a second signal, SIGKILL at once. With
  `parent_death` in the spec it gets SIGHUP when its parent dies (an engine's
  worker killed outright), so that the job never outlives it;
- writes `exit-N.json` (exit status, peak RSS, leftovers, and what only the
  node knows: its name, the cause when it is a stop or the node's OOM killer)
  and exits with the job's status (128 + N for signal N); with
  `closure_digests` in the spec it first hashes the files of the job's
  closure in its folder (`closure_check`), for the head to compare with its own.

No store is opened here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mayuri.executors.local.shepherd import KILL_ORPHANS_ENV, Job, Shepherd, leftovers
from mayuri.executors.remote.spool import METRICS_PREFIX, METRICS_SUFFIX
from mayuri.run_contract import (
    PARAMS_FILE,
    RUN_DIR_VAR,
    RUN_ID_VAR,
    SPOOL_VAR,
    exit_record,
    log_file,
    spool_dir,
)

# The node-side machinery's own variables, never a job's (with `inherit`).
MACHINERY = (KILL_ORPHANS_ENV,)
# Where Mayuri's package is on the head: relocated to this node's, for the closure bootstrap.
PACKAGE = Path(__file__).resolve().parents[2]


def make_spec(
    *,
    command: Sequence[str] | str,
    shell: bool,
    cwd: Path,
    env: Mapping[str, str],
    run_dir: Path,
    attempt: int,
    grace: float,
    params: Any = None,
    relocate: Sequence[tuple[str, str]] = (),
    spool: bool = True,
    inherit: bool = False,
) -> dict[str, Any]:
    """The runner's spec for one attempt (JSON-able), built on the head.

    `relocate`: (head path, node path) pairs, applied on the node to the
    command, its folder and its environment; `params`: written to the node's
    run folder as params.json (None: the head's run folder is the node's).
    `inherit`: the job's environment is the node's own with what the head's
    job environment changes (set or unset) relative to the head's; only that
    difference travels (otherwise the whole environment does).
    """
    argv = ["/bin/sh", "-c", command] if shell and isinstance(command, str) else list(command)
    wanted = dict(env)
    unset: list[str] = []
    if inherit:
        unset = sorted(name for name in os.environ if name not in wanted)
        wanted = {name: value for name, value in wanted.items() if os.environ.get(name) != value}
    return {
        "argv": argv, "cwd": str(cwd), "env": wanted, "unset": unset, "inherit": inherit, "run_dir": str(run_dir),
        "attempt": attempt, "grace": grace, "params": params, "relocate": [list(pair) for pair in relocate],
        "package": str(PACKAGE), "spool": spool,
    }


def _mover(pairs: Sequence[Sequence[str]]) -> Any:
    # A head path is replaced only as a whole path (or a path's start), never inside another name.
    moves = [(re.compile(re.escape(old.rstrip("/")) + r"(?=/|:|\s|$)"), new.rstrip("/"))
             for old, new in pairs if old.rstrip("/") != new.rstrip("/")]

    def move(text: str) -> str:
        for pattern, new in moves:
            text = pattern.sub(new.replace("\\", "\\\\"), text)
        return text

    return move


def node_launch(spec: Mapping[str, Any]) -> tuple[list[str], str, dict[str, str], Path]:
    """The command, folder, environment and run folder of the spec, on this node."""
    move = _mover([*spec.get("relocate", []), (spec.get("package") or str(PACKAGE), str(PACKAGE))])
    argv = [move(token) for token in spec["argv"]]
    env = {name: value for name, value in os.environ.items() if name not in MACHINERY} if spec.get("inherit") else {}
    for name in spec.get("unset", []):
        env.pop(name, None)
    env.update({name: move(value) for name, value in spec["env"].items()})
    if spec.get("spool", True):
        env[SPOOL_VAR] = "1"
    if "LD_PRELOAD" in env:
        from mayuri.closure.launch import _python_folders, tracer_library

        # This node's tracer (or none, where it does not load) and this node's interpreter folders.
        library = tracer_library()
        kept = [entry for entry in env["LD_PRELOAD"].split() if "_tracer" not in Path(entry).name]
        if library is not None:
            kept.insert(0, library)
            env["MAYURI_TRACER_SKIP"] = _python_folders()
        if kept:
            env["LD_PRELOAD"] = " ".join(kept)
        else:
            del env["LD_PRELOAD"]
    run_dir = Path(env.get(RUN_DIR_VAR) or move(spec["run_dir"]))
    return argv, move(spec["cwd"]), env, run_dir


class _Runner(Shepherd):
    """The shepherd's machinery for one job, answering to this process instead of a scheduler's pipe."""

    def __init__(self, oom_before: int | None, digests: tuple[Path, Path, Path, int] | None = None) -> None:
        super().__init__()
        self.heard: list[dict[str, Any]] = []
        self.oom_before = oom_before
        # (closure folder, project copy, run folder, attempt): hash the closure's files before the end is written.
        self.digests = digests

    def tell(self, message: dict[str, Any]) -> None:
        self.heard.append(message)

    def finish(self, job: Job) -> None:
        # Only the node can see its OOM killer's count: its kill is named here, before the record is written.
        from mayuri.scheduler.causes import oom_kill_count

        after = oom_kill_count()
        if "cause" not in job.extra and (job.code or 0) < 0 and self.oom_before is not None \
                and after is not None and after > self.oom_before:
            job.extra["cause"] = "host_oom"
        if self.digests is not None:
            from mayuri.executors.remote.closure_check import node_digests, write_digests

            closure_dir, project, run_dir, attempt = self.digests
            try:
                write_digests(run_dir, attempt, node_digests(closure_dir, project, [run_dir.parent.parent])[0])
            except (OSError, ValueError) as exc:
                sys.stderr.write(f"mayuri: the closure's files were not hashed on the node: {exc}\n")
        super().finish(job)


class UsageSpool:
    """The job's CPU and memory, sampled as the local executor samples a local job's, into the run's spool.

    The head's ingestion reads them with the job's own metrics (`sys/*` points):
    a node never opens the store.
    """

    def __init__(self, pid: int, run_dir: Path) -> None:
        from mayuri.executors.local.process import JobProcess
        from mayuri.executors.local.usage import Sampler

        self.sampler = Sampler(JobProcess(pid, None, time.time()))
        self.path = spool_dir(run_dir) / f"{METRICS_PREFIX}runner-{os.getpid()}{METRICS_SUFFIX}"

    def sample_if_due(self, now: float) -> None:
        if not self.sampler.due(now):
            return
        points = self.sampler.sample({}, now)
        if not points:
            return
        from mayuri.tracking.writer import encode_frame

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write per frame: the reader takes whole frames only.
            with open(self.path, "ab", buffering=0) as spool:
                spool.write(encode_frame(points))
        except OSError as exc:
            sys.stderr.write(f"mayuri: the job's usage was not recorded: {exc}\n")


_stop_asked: list[int] = []


def _asked(signum: int, _frame: Any) -> None:
    _stop_asked.append(signum)


def _signal_job(job: Job, sig: int) -> None:
    try:
        os.killpg(job.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    if sig == signal.SIGKILL:
        found, sinks = leftovers([job])[job.pid]
        for pid in found | sinks:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                continue


def _die_with_parent() -> None:
    """Get SIGHUP when the parent process dies (Linux's PR_SET_PDEATHSIG); a parent gone already counts."""
    import ctypes

    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGHUP)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent or parent == 1:
        _stop_asked.append(signal.SIGHUP)


def _write_failure(record: Path, message: str) -> None:
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(json.dumps({"pid": None, "exit_code": 127, "ended_at": time.time(), "max_rss": 0,
                               "leftovers": 0, "node": socket.gethostname(), "cause": "start_failed",
                               "error": message}), encoding="utf-8")
    os.replace(tmp, record)


def prepare(spec: Mapping[str, Any]) -> tuple[list[str], str, dict[str, str], Path]:
    """`node_launch`, with the node's run folder, closure folder and params.json made."""
    argv, cwd, env, run_dir = node_launch(spec)
    run_dir.mkdir(parents=True, exist_ok=True)
    if spec.get("params") is not None:
        (run_dir / PARAMS_FILE).write_text(json.dumps(spec["params"], indent=2, sort_keys=True), encoding="utf-8")
    if env.get("MAYURI_CLOSURE_DIR"):
        os.makedirs(env["MAYURI_CLOSURE_DIR"], exist_ok=True)
    return argv, cwd, env, run_dir


def run(spec: Mapping[str, Any]) -> int:
    """Run the spec's attempt to its end; its exit status (as a process's)."""
    argv, cwd, env, run_dir = prepare(spec)
    attempt = int(spec["attempt"])
    grace = float(spec.get("grace", 10.0))
    record = exit_record(run_dir, attempt)
    from mayuri.scheduler.causes import oom_kill_count

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _asked)
    if spec.get("parent_death"):
        _die_with_parent()
    digests = None
    if spec.get("closure_digests") and env.get("MAYURI_CLOSURE_DIR"):
        digests = (Path(env["MAYURI_CLOSURE_DIR"]), Path(cwd), run_dir, attempt)
    runner = _Runner(oom_kill_count(), digests)
    runner.start({
        "id": 1, "argv": argv, "cwd": cwd, "env": env, "run_id": env.get(RUN_ID_VAR, ""),
        "stdout": str(log_file(run_dir, "stdout")), "stderr": str(log_file(run_dir, "stderr")), "append": True,
        "record": str(record), "grace": grace,
    })
    if not runner.jobs:
        error = runner.heard[-1].get("error") if runner.heard else "unknown error"
        _write_failure(record, f"cannot start '{argv[0]}': {error}")
        return 127
    job = next(iter(runner.jobs.values()))
    job.extra = {"node": socket.gethostname(), "started_at": time.time()}
    usage = UsageSpool(job.pid, run_dir) if env.get(SPOOL_VAR) else None
    kill_at: float | None = None
    while runner.jobs:
        now = time.monotonic()
        if usage is not None and job.code is None:
            usage.sample_if_due(now)
        if _stop_asked and kill_at is None:
            job.extra["cause"] = "stopped"
            _signal_job(job, signal.SIGTERM)
            kill_at = now + grace
        if signal.SIGHUP in _stop_asked or len(_stop_asked) > 1:
            kill_at = now
        if kill_at is not None and now >= kill_at and job.code is None:
            _signal_job(job, signal.SIGKILL)
        wake = runner.settle_leftovers(now)
        timeout = min(wake if wake is not None else 1.0, max(0.01, kill_at - now) if kill_at else 1.0)
        try:
            select.select([wake_r], [], [], timeout)
        except InterruptedError:
            pass
        try:
            os.read(wake_r, 512)
        except BlockingIOError:
            pass
        runner.reap()
    code = job.code if job.code is not None else 255
    return code if code >= 0 else 128 - code


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m mayuri.executors.remote.runner SPEC.json (or - for stdin)\n")
        return 2
    text = sys.stdin.read() if argv[0] == "-" else Path(argv[0]).read_text(encoding="utf-8")
    return run(json.loads(text))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
