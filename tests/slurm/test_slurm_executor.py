"""The slurm executor against a real Slurm: the one-node cluster of scripts/slurm-up.sh (started by .ci/run).

Each test submits real jobs through submitit and checks the store, the run
folders and Slurm's own view (squeue). Skipped, saying why, where there is no
cluster to submit to.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Project

UP = "start one with `sudo bash scripts/slurm-up.sh` (.ci/run does)"


def _cluster() -> str:
    """The default partition of a live cluster; skips the test (with the reason) where there is none."""
    partition, reason = _probe()
    if partition is None:
        pytest.skip(reason)
    return partition


@functools.cache
def _probe() -> tuple[str | None, str]:
    """(the default partition, "") of a live cluster, or (None, why not): asked once per test process
    (where Slurm is installed but not running, sinfo waits 20 s for its controller)."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        return None, "submitit is not installed (pip install 'mayuri[slurm]')"
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%P|%T"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"no Slurm cluster here (sinfo: {exc}); {UP}"
    lines = [line.split("|") for line in done.stdout.split()]
    live = [p.rstrip("*") for p, state in lines if state in ("idle", "mixed", "allocated")]
    if done.returncode != 0 or not live:
        return None, f"no Slurm node is up (sinfo: {(done.stdout + done.stderr).strip() or 'nothing'}); {UP}"
    default = [p.rstrip("*") for p, _ in lines if p.endswith("*")]
    return (default[0] if default and default[0] in live else live[0]), ""


@pytest.fixture
def slurm(project: Project) -> Iterator[Project]:
    """A project whose jobs run on the cluster's default partition."""
    partition = _cluster()
    with open(project.root / "mayuri.toml", "a", encoding="utf-8") as handle:
        handle.write(f'\n[executor]\ndefault = "slurm"\n\n[executor.slurm]\npartition = "{partition}"\n')
    yield project
    # Whatever a failed test left in the queue is cancelled (only this project's jobs).
    refs = [r for (r,) in _query(project, "SELECT executor_ref FROM attempt WHERE executor = 'slurm'") if r]
    if refs:
        subprocess.run(["scancel", *refs], capture_output=True, timeout=30, check=False)


def _query(project: Project, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    if not project.db.exists():
        return []
    with sqlite3.connect(project.db, timeout=30) as db:
        return db.execute(sql, args).fetchall()


def _slurm_state(job_id: str) -> str:
    done = subprocess.run(["squeue", "-h", "-t", "all", "-j", f"{job_id},{job_id}", "-o", "%T"],
                          capture_output=True, text=True, timeout=30, check=False)
    return (done.stdout.split() or ["UNKNOWN"])[0]


def _until(what: Callable[[], Any], timeout: float = 60.0, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {message or what}")


def _background(project: Project, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.Popen([sys.executable, "-m", "mayuri", *args], cwd=project.root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(process: subprocess.Popen[str], timeout: float = 90) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"mayuri did not end:\n{out}") from None
    return out


def _submissions(project: Project) -> int:
    folder = project.root / ".mayuri" / "slurm"
    return len(list(folder.glob("*_submission.sh"))) if folder.exists() else 0


TRAIN = """
import time, mayuri
for step in range(4):
    mayuri.log(step=step, loss=1.0 / (step + 1))
    print("step", step, flush=True)
    time.sleep(1.0)
mayuri.output("loss", 0.25)
"""


def test_pipeline_trained_on_slurm_then_cached_here_and_there(slurm: Project) -> None:
    slurm.write("train.py", TRAIN)
    slurm.write("exp.yaml", """
        name: pipe
        params: {lr: 0.1}
        jobs:
          prep:
            run: echo prepared
          train:
            run: python train.py
            depends_on: [prep]
    """)
    head = _background(slurm, "run", "exp.yaml")
    try:
        train = _until(lambda: _query(slurm, "SELECT r.id FROM run r JOIN attempt a ON a.run_id = r.id "
                                             "WHERE r.job = 'train' AND a.executor_ref IS NOT NULL"),
                       message="train submitted")[0][0]
        follower = _background(slurm, "logs", "-f", train)
        # Metrics reach the store while the job still runs on its node.
        _until(lambda: _query(slurm, "SELECT 1 FROM metric m JOIN run r ON r.id = m.run_id WHERE r.id = ? "
                                     "AND r.status = 'running'", train),
               message="a metric of the running job")
        out = _finish(head)
        followed = _finish(follower, timeout=30)
    finally:
        if head.poll() is None:
            head.send_signal(signal.SIGINT)
            _finish(head)
    assert head.returncode == 0, out
    assert [f"step {i}" for i in range(4)] == [line for line in followed.splitlines() if line.startswith("step")]
    assert "queued in Slurm" in out or "started" in out
    rows = _query(slurm, "SELECT r.job, r.status, a.executor, a.executor_ref FROM run r JOIN attempt a "
                         "ON a.run_id = r.id ORDER BY r.job")
    assert [(job, status, executor) for job, status, executor, _ in rows] == [
        ("prep", "succeeded", "slurm"), ("train", "succeeded", "slurm")]
    assert all(ref.isdigit() for *_, ref in rows)
    shown = slurm.show(train)
    [attempt] = shown["attempts"]
    # Where it ran: the node (from the runner's exit record), by its Slurm job id.
    assert (attempt["executor"], attempt["node"]) == ("slurm", subprocess.run(
        ["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip())
    assert attempt["executor_ref"].isdigit()
    assert shown["outputs"] == {"loss": 0.25}
    assert shown["metrics"]["loss"]["count"] == 4
    # Its CPU and memory, sampled by the runner on the node, came back through the spool.
    assert shown["metrics"]["sys/rss_bytes"]["count"] >= 1 and "sys/cpu_percent" in shown["metrics"]
    assert [c["path"] for c in shown["closure"] if c["role"] == "code"] == ["train.py"]
    # Cached: nothing is submitted again, on Slurm or locally.
    submitted = _submissions(slurm)
    again = slurm.mayuri("run", "exp.yaml")
    assert again.returncode == 0 and again.stderr.count("cached (run") == 2, again.stdout + again.stderr
    local = slurm.mayuri("run", "exp.yaml", "--executor", "local")
    assert local.returncode == 0 and local.stderr.count("cached (run") == 2, local.stdout + local.stderr
    assert _submissions(slurm) == submitted


def _stopped_while_running(slurm: Project, stop: Callable[[subprocess.Popen[str], str], None]) -> int:
    """Run a long job on Slurm, `stop(head, run_id)` once Slurm runs it: the run is cancelled, its job too."""
    slurm.write("exp.yaml", """
        name: long
        jobs:
          sleeper:
            run: sleep 120
    """)
    head = _background(slurm, "run", "exp.yaml")
    try:
        run_id, ref = _until(lambda: _query(slurm, "SELECT run_id, executor_ref FROM attempt "
                                                   "WHERE executor_ref IS NOT NULL"), message="submitted")[0]
        _until(lambda: _slurm_state(ref) == "RUNNING", message="the Slurm job running")
        stop(head, run_id)
        out = _finish(head)
    finally:
        if head.poll() is None:
            head.kill()
            _finish(head)
    assert _query(slurm, "SELECT status FROM run WHERE id = ?", run_id) == [("cancelled",)], out
    assert _until(lambda: _slurm_state(ref) in ("CANCELLED", "COMPLETED"), timeout=30, message="scancel")
    return head.returncode


def test_cancel_stops_the_slurm_job(slurm: Project) -> None:
    def cancel(head: subprocess.Popen[str], run_id: str) -> None:
        done = slurm.mayuri("cancel", run_id)
        assert done.returncode == 0, done.stderr

    _stopped_while_running(slurm, cancel)


def test_ctrl_c_cancels_the_slurm_job(slurm: Project) -> None:
    assert _stopped_while_running(slurm, lambda head, _: head.send_signal(signal.SIGINT)) == 130


def test_a_sweep_goes_as_one_job_array(slurm: Project) -> None:
    with open(slurm.root / "mayuri.toml", "a", encoding="utf-8") as handle:
        handle.write("array = true\n")
    slurm.write("exp.yaml", """
        name: sweep
        params: {seed: 0}
        jobs:
          train:
            # The seed in the command: the instances differ from the start, so all three start together.
            run: python -c "import mayuri; mayuri.output('seed', ${seed})"
    """)
    done = slurm.mayuri("run", "exp.yaml", "seed=1,2,3", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    refs = sorted(r for (r,) in _query(slurm, "SELECT executor_ref FROM attempt"))
    assert len(refs) == 3 and len({r.split("_")[0] for r in refs}) == 1, refs
    assert sorted(r.split("_")[1] for r in refs) == ["0", "1", "2"]
    outputs = sorted(json.loads(v) for (v,) in _query(slurm, "SELECT value FROM output WHERE name = 'seed'"))
    assert outputs == [1, 2, 3]


def test_timeout_stops_the_slurm_job(slurm: Project) -> None:
    slurm.write("exp.yaml", """
        name: slow
        jobs:
          slow:
            run: sleep 120
            timeout: 3s
    """)
    done = slurm.mayuri("run", "exp.yaml", timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    [(status, ref, cause)] = _query(slurm, "SELECT r.status, a.executor_ref, a.cause FROM run r JOIN attempt a "
                                           "ON a.run_id = r.id")
    # As for a local job: the attempt timed out, the run failed.
    assert (status, cause) == ("failed", "timeout")
    assert _until(lambda: _slurm_state(ref) != "RUNNING", timeout=30, message="the Slurm job stopped")


def test_a_missing_partition_is_refused_before_anything_runs(slurm: Project) -> None:
    slurm.write("exp.yaml", """
        name: nowhere
        jobs:
          one:
            run: echo hi
    """)
    text = (slurm.root / "mayuri.toml").read_text(encoding="utf-8")
    (slurm.root / "mayuri.toml").write_text(text.replace('partition = "', 'partition = "nope-'), encoding="utf-8")
    done = slurm.mayuri("run", "exp.yaml")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no partition 'nope-" in done.stderr and "Traceback" not in done.stderr
    assert _query(slurm, "SELECT count(*) FROM run") in ([], [(0,)])
    hidden = dict(os.environ, PATH=str(Path(sys.executable).parent))
    (slurm.root / "mayuri.toml").write_text(text, encoding="utf-8")
    done = slurm.mayuri("run", "exp.yaml", env=hidden)
    assert done.returncode == 2 and "`sbatch` is not on the PATH" in done.stderr, done.stderr


OOM_ONCE = """
import os, sys
print("gpus", os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
if os.environ["MAYURI_ATTEMPT"] == "1":
    sys.exit("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
"""


def test_gpus_come_from_slurm_and_a_cuda_oom_is_retried(slurm: Project) -> None:
    # The head has no GPU: Slurm places the job on its node's (fake) GPUs.
    slurm.write("oom.py", OOM_ONCE)
    slurm.write("exp.yaml", """
        name: gpu
        jobs:
          fit:
            run: python oom.py
            resources: {gpus: 1}
            retry: {oom: {max: 1, strategy: wait, wait: 0s}}
    """)
    done = slurm.mayuri("run", "exp.yaml", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    attempts = _query(slurm, "SELECT number, cause, executor_ref FROM attempt ORDER BY number")
    assert [(n, c) for n, c, _ in attempts] == [(1, "gpu_oom"), (2, None)]
    assert attempts[0][2] != attempts[1][2]  # a new Slurm job for the retry
    [(run_dir,)] = _query(slurm, "SELECT run_dir FROM run")
    # Each attempt saw the one GPU Slurm gave it (gres, as CUDA_VISIBLE_DEVICES).
    seen = (Path(run_dir) / "stdout.log").read_text().splitlines()
    assert len(seen) == 2 and all(line in ("gpus 0", "gpus 1") for line in seen), seen


def test_a_head_that_died_finds_its_slurm_job_and_adopts_it(slurm: Project) -> None:
    slurm.write("train.py", TRAIN)
    slurm.write("exp.yaml", """
        name: adopt
        jobs:
          train:
            run: python train.py
    """)
    head = _background(slurm, "run", "exp.yaml")
    try:
        run_id, ref = _until(lambda: _query(slurm, "SELECT run_id, executor_ref FROM attempt "
                                                   "WHERE executor_ref IS NOT NULL"), message="submitted")[0]
        _until(lambda: _query(slurm, "SELECT 1 FROM metric WHERE run_id = ?", run_id), message="a first metric")
    finally:
        head.kill()  # the head dies (SIGKILL): its Slurm job goes on
        _finish(head)
    assert _slurm_state(ref) == "RUNNING"
    done = slurm.mayuri("run", "exp.yaml", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "adopted" in done.stderr and "cached (run" in done.stderr, done.stderr
    assert _query(slurm, "SELECT count(*) FROM attempt") == [(1,)]  # never submitted twice
    shown = slurm.show(run_id)
    assert shown["status"] == "succeeded" and shown["outputs"] == {"loss": 0.25}
    # Every metric, those spooled after the head died included.
    assert shown["metrics"]["loss"]["count"] == 4


def test_a_timeout_counts_from_when_the_job_runs_not_while_it_is_queued(slurm: Project) -> None:
    # Two jobs that each want every CPU of the node: the second waits in Slurm's queue for the first.
    # Each runs in well under its timeout; counted from its submission, the second would not. Its
    # Slurm limit (timeout + 60 s) is under submitit's 90 s warning (SIGUSR2), which must not come.
    cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, check=True).stdout.split()[0])
    slurm.write("exp.yaml", f"""
        name: queue
        params: {{n: 1}}
        jobs:
          hog:
            run: python -c "import time; time.sleep(6); print(${{n}})"
            resources: {{cpus: {cpus}}}
            timeout: 12s
    """)
    done = slurm.mayuri("run", "exp.yaml", "n=1,2", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "queued in Slurm" in done.stderr, done.stderr
    assert _query(slurm, "SELECT status, count(*) FROM run GROUP BY status") == [("succeeded", 2)]


def test_labels_are_slurm_constraints_and_a_refusal_fails_the_job(slurm: Project) -> None:
    features = subprocess.run(["sinfo", "-h", "-o", "%f"], capture_output=True, text=True, check=True).stdout.split()
    feature = next((f for f in ",".join(features).split(",") if f and f != "(null)"), None)
    if feature is None:
        pytest.skip("no node of this cluster has a feature (scripts/slurm-up.sh gives its node `fake-gpu`)")
    slurm.write("exp.yaml", f"""
        name: where
        jobs:
          fits:
            run: python -c "print('fits')"
            resources: {{labels: [{feature}]}}
          nowhere:
            # Not the same command: resources do not count in the cache key, so it would be reused.
            run: python -c "print('nowhere')"
            resources: {{labels: [no-such-feature]}}
    """)
    done = slurm.mayuri("run", "exp.yaml", timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    rows = dict(_query(slurm, "SELECT job, status FROM run"))
    assert rows == {"fits": "succeeded", "nowhere": "failed"}
    [(error,)] = _query(slurm, "SELECT error FROM run WHERE job = 'nowhere'")
    assert "Slurm refused the job" in error and "feature" in error.lower(), error


def test_a_job_still_queued_is_shown_so_and_cancelled_at_once(slurm: Project) -> None:
    with open(slurm.root / "mayuri.toml", "a", encoding="utf-8") as handle:
        handle.write('additional = {begin = "now+3600"}\n')  # Slurm holds it an hour
    slurm.write("exp.yaml", """
        name: later
        jobs:
          later:
            run: python -c pass
    """)
    head = _background(slurm, "run", "exp.yaml")
    try:
        run_id, ref = _until(lambda: _query(slurm, "SELECT run_id, executor_ref FROM attempt "
                                                   "WHERE executor_ref IS NOT NULL"), message="submitted")[0]
        assert _slurm_state(ref) == "PENDING"
        began = time.monotonic()
        assert slurm.mayuri("cancel", run_id).returncode == 0
        out = _finish(head)
        assert time.monotonic() - began < 15, out
    finally:
        if head.poll() is None:
            head.kill()
            _finish(head)
    assert "queued in Slurm (job " in out and "BeginTime" in out, out
    assert _query(slurm, "SELECT status FROM run") == [("cancelled",)]
    assert _slurm_state(ref) == "CANCELLED"
