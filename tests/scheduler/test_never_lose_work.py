"""Issue 16: never lose work. Resume across runs, adoption after the scheduler dies, SIGHUP,
finishing errors isolated, leftover processes stopped, all through the real CLI with real processes."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import psutil
from sched_helpers import processes_with_run_ids, query, start_mayuri, store_is_sound, wait_for

TRAIN = """
    import json, os, sys, time
    import mayuri

    steps, delay = int(sys.argv[1]), float(os.environ.get("TRAIN_DELAY", "0"))
    start = 0
    source = mayuri.resume_from()
    if source is not None:
        start = max(int(p.stem.split("-")[1]) for p in source.glob("step-*.json"))
        print(f"resumed at step {start}", flush=True)
    folder = mayuri.checkpoint_dir()
    with open(os.path.join(os.environ["MAYURI_RUN_DIR"], "job.pid"), "w") as handle:
        handle.write(str(os.getpid()))
    for step in range(start + 1, steps + 1):
        time.sleep(delay)
        (folder / f"step-{step}.json").write_text(json.dumps({"step": step}))
        mayuri.log(step=step, loss=1.0 / step)
    mayuri.output("steps", steps)
"""


def train_project(project) -> None:
    project.write("train.py", TRAIN)
    project.write("exp.yaml", """
        name: longtrain
        params: {steps: 8}
        jobs:
          train:
            run: python train.py ${steps}
        """)


# The pace of the training comes from the environment, so that the config (and the cache key) stay the same.
SLOW = {"TRAIN_DELAY": "0.3"}
FAST = {"TRAIN_DELAY": "0"}


def checkpoints_of(project, run_id: str) -> list[Path]:
    return sorted((project.root / ".mayuri" / "runs" / run_id / "checkpoints").glob("*/step-*.json"))


def only_run(project) -> dict:
    runs = project.runs()
    assert len(runs) == 1, runs
    return runs[0]


def wait_for_steps(project, count: int) -> str:
    wait_for(lambda: project.db.exists() and len(project.runs()) == 1
             and len(checkpoints_of(project, project.runs()[0]["id"])) >= count, timeout=60, message="checkpoints")
    return project.runs()[0]["id"]


def resumed(project, run_id: str) -> tuple[str | None, int | None]:
    row = query(project.db, "SELECT resumed_from, resumed_step FROM attempt WHERE run_id = ? AND number = 1",
                (run_id,))
    return row[0]


def newest(project) -> dict:
    return max(project.runs(), key=lambda r: r["started"] or "")


def test_cancel_then_rerun_resumes_and_fresh_starts_over(project) -> None:
    train_project(project)
    proc = start_mayuri(project.root, "run", "exp.yaml", env=SLOW)
    first = wait_for_steps(project, 2)
    assert project.mayuri("cancel", "--all").returncode == 0
    proc.communicate(timeout=60)
    assert only_run(project)["status"] == "cancelled"
    saved = len(checkpoints_of(project, first))

    done = project.mayuri("run", "exp.yaml", env=FAST)
    assert done.returncode == 0, done.stderr
    second = next(r for r in project.runs() if r["id"] != first)
    assert second["status"] == "succeeded"
    log = (project.root / ".mayuri" / "runs" / second["id"] / "stdout.log").read_text()
    step = int(log.split("resumed at step ")[1].split()[0])
    assert step >= saved
    assert resumed(project, second["id"]) == (first, step)
    shown = project.mayuri("show", second["id"][:8])
    assert f"resumed from run {first[:8]} at step {step}" in shown.stdout, shown.stdout
    assert "resumed" in {edge["name"] for edge in project.show(second["id"])["lineage"]["upstream"]}
    assert f"resumed from run {first[:8]}" in done.stderr + done.stdout

    # --fresh: the same interrupted state, started from scratch.
    proc = start_mayuri(project.root, "run", "exp.yaml", "--force", env=SLOW)
    wait_for(lambda: any(r["status"] == "running" for r in project.runs()), message="third run")
    third = next(r["id"] for r in project.runs() if r["status"] == "running")
    wait_for(lambda: len(checkpoints_of(project, third)) >= 1, message="a checkpoint")
    assert project.mayuri("cancel", "--all").returncode == 0
    proc.communicate(timeout=60)
    fresh = project.mayuri("run", "exp.yaml", "--fresh", env=FAST)
    assert fresh.returncode == 0, fresh.stderr
    fourth = newest(project)["id"]
    assert "resumed" not in (project.root / ".mayuri" / "runs" / fourth / "stdout.log").read_text()
    assert resumed(project, fourth) == (None, None)
    store_is_sound(project.db)


def test_kill_9_of_the_job_then_rerun_resumes(project) -> None:
    train_project(project)
    proc = start_mayuri(project.root, "run", "exp.yaml", env=SLOW)
    first = wait_for_steps(project, 2)
    pid = int((project.root / ".mayuri" / "runs" / first / "job.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert only_run(project)["status"] == "failed"
    done = project.mayuri("run", "exp.yaml", env=FAST)
    assert done.returncode == 0, done.stderr
    second = newest(project)
    assert second["status"] == "succeeded" and second["id"] != first
    assert "resumed at step" in (project.root / ".mayuri" / "runs" / second["id"] / "stdout.log").read_text()
    assert resumed(project, second["id"])[0] == first
    store_is_sound(project.db)


def test_kill_9_of_mayuri_run_the_job_finishes_and_is_adopted(project) -> None:
    train_project(project)
    proc = start_mayuri(project.root, "run", "exp.yaml", env={"TRAIN_DELAY": "0.3"})
    first = wait_for_steps(project, 1)
    pid = int((project.root / ".mayuri" / "runs" / first / "job.pid").read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert psutil.pid_exists(pid), "the job goes on without its scheduler"
    done = project.mayuri("run", "exp.yaml", env=FAST)
    assert done.returncode == 0, done.stderr
    assert "adopted" in done.stderr + done.stdout
    run = only_run(project)  # no second launch
    assert run["id"] == first and run["status"] == "succeeded"
    assert query(project.db, "SELECT COUNT(*) FROM attempt") == [(1,)]
    shown = project.show(first)
    assert shown["outputs"] == {"steps": 8}
    assert shown["fingerprint"]
    steps = query(project.db, "SELECT COUNT(*) FROM metric JOIN metric_key k ON k.id = metric.key_id "
                              "WHERE run_id = ? AND k.name = 'loss'", (first,))
    assert steps == [(8,)]
    again = project.mayuri("run", "exp.yaml", env=FAST)
    assert again.returncode == 0 and "cached" in again.stderr + again.stdout
    store_is_sound(project.db)


def test_kill_9_of_mayuri_run_then_doctor_waits_and_records_the_job(project) -> None:
    """`mayuri doctor` adopts a live job of a dead scheduler: waits, says so, records it succeeded."""
    train_project(project)
    proc = start_mayuri(project.root, "run", "exp.yaml", env={"TRAIN_DELAY": "0.3"})
    first = wait_for_steps(project, 1)
    pid = int((project.root / ".mayuri" / "runs" / first / "job.pid").read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert psutil.pid_exists(pid)
    done = project.mayuri("doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"waiting for 1 job(s) of a dead scheduler to end: {first[:8]} (longtrain/train)" in done.stderr
    assert "adopted jobs" in done.stdout and first[:8] in done.stdout
    assert not psutil.pid_exists(pid)
    run = only_run(project)
    assert run["status"] == "succeeded"
    assert project.show(first)["outputs"] == {"steps": 8}
    assert query(project.db, "SELECT COUNT(*) FROM gpu_lease") == [(0,)]
    assert query(project.db, "SELECT COUNT(*) FROM scheduler WHERE status = 'running'") == [(0,)]
    store_is_sound(project.db)


def test_ctrl_c_of_doctor_leaves_the_adopted_job_running(project) -> None:
    train_project(project)
    proc = start_mayuri(project.root, "run", "exp.yaml", env={"TRAIN_DELAY": "0.4"})
    first = wait_for_steps(project, 1)
    pid = int((project.root / ".mayuri" / "runs" / first / "job.pid").read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    doctor = start_mayuri(project.root, "doctor")
    # Ctrl-C once doctor says it waits (its stderr is line-buffered): it must not reach the job.
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(iter(doctor.stderr.readline, "")), daemon=True)
    reader.start()
    wait_for(lambda: any("waiting for 1 job" in line for line in said) or doctor.poll() is not None,
             timeout=60, message="doctor to wait for the job")
    doctor.send_signal(signal.SIGINT)
    out = doctor.stdout.read()
    doctor.wait(30)
    reader.join(10)
    errors = "".join(said)
    assert "left running" in out, out + errors
    assert "Traceback" not in errors
    assert psutil.pid_exists(pid), "Ctrl-C of doctor leaves the job running"
    assert only_run(project)["status"] == "running"
    wait_for(lambda: not psutil.pid_exists(pid), timeout=60, message="the job ends")
    done = project.mayuri("doctor")
    assert done.returncode == 0 and only_run(project)["status"] == "succeeded", done.stdout


def test_sighup_stops_the_jobs_cleanly(project) -> None:
    train_project(project)
    proc = start_mayuri(project.root, "run", "exp.yaml", env=SLOW)
    first = wait_for_steps(project, 1)
    os.kill(proc.pid, signal.SIGHUP)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert only_run(project)["status"] == "cancelled"
    assert processes_with_run_ids([first]) == []
    store_is_sound(project.db)


def test_finishing_errors_fail_that_run_alone(project) -> None:
    project.write("ok.py", "import mayuri\nmayuri.output('value', 1)\n")
    project.write("bad_outputs.py", """
        import os
        with open(os.path.join(os.environ["MAYURI_RUN_DIR"], "outputs.json"), "w") as handle:
            handle.write("{not json")
        """)
    # A code file larger than the file-size limit the scheduler runs under: copying it into blobs fails (EFBIG).
    project.write("big_helper.py", "VALUE = 1\n" + ("# padding " + "x" * 100 + "\n") * 14000)
    project.write("big.py", "import big_helper\n")
    project.write("data.txt", "1\n")
    project.write("unreadable.py", """
        import os
        open("data.txt").read()
        os.remove("data.txt")
        os.symlink("data.txt", "data.txt")  # a link to itself: unreadable (ELOOP) when hashed
        """)
    project.write("exp.yaml", """
        name: finishing
        jobs:
          sibling: {run: python ok.py}
          bad_outputs: {run: python bad_outputs.py}
          big_code: {run: python big.py}
          unreadable: {run: python unreadable.py}
        """)
    limit = 1024 * 1024

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = dict(os.environ, COLUMNS="200", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, "-m", "mayuri", "run", "exp.yaml"], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=limited)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    status = {r["job"]: r for r in project.runs()}
    assert status["sibling"]["status"] == "succeeded"
    for job in ("bad_outputs", "big_code", "unreadable"):
        assert status[job]["status"] == "failed", (job, status[job])
        error = project.show(status[job]["id"])["error"]
        assert error.startswith("recording the run failed: "), (job, error)
        assert "\n" not in error
    store_is_sound(project.db)


DAEMON = """
    import os, subprocess, sys, time
    run_dir = os.environ["MAYURI_RUN_DIR"]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.path.join(run_dir, "child.pid"), "w") as handle:
        handle.write(str(child.pid))
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            with open(os.path.join(run_dir, "daemon.pid"), "w") as handle:
                handle.write(str(os.getpid()))
            time.sleep(120)
        os._exit(0)
    while not os.path.exists(os.path.join(run_dir, "daemon.pid")):
        time.sleep(0.01)
"""


def test_leftover_child_and_daemon_are_stopped_before_the_run_ends(project, sigkill_later) -> None:
    project.write("leaver.py", DAEMON)
    project.write("exp.yaml", "name: leftovers\njobs:\n  leaver: {run: python leaver.py}\n")
    toml = project.root / "mayuri.toml"
    toml.write_text(toml.read_text().replace("kill_grace = 10", "kill_grace = 2"))
    done = project.mayuri("run", "exp.yaml")
    run = only_run(project)
    folder = project.root / ".mayuri" / "runs" / run["id"]
    pids = [int((folder / name).read_text()) for name in ("child.pid", "daemon.pid")]
    sigkill_later.extend(pids)
    assert done.returncode == 0, done.stderr
    assert run["status"] == "succeeded"
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    assert query(project.db, "SELECT leftovers FROM attempt") == [(2,)]
    assert "stopped 2 leftover process(es)" in project.mayuri("show", run["id"][:8]).stdout
    ended = query(project.db, "SELECT ended_at FROM attempt")[0][0]
    assert ended >= os.stat(folder / "exit-1.json").st_mtime - 1.0
    store_is_sound(project.db)


RETAIN = """
    import mayuri
    folder = mayuri.checkpoint_dir(keep_last=2, keep_best=1, metric="val_loss")
    for epoch, val_loss in enumerate([0.9, 0.2, 0.5, 0.7, 0.6]):
        (folder / f"epoch-{epoch}.pt").write_text(str(epoch))
        mayuri.checkpoint_saved(folder / f"epoch-{epoch}.pt", val_loss=val_loss)
        mayuri.log(step=epoch, val_loss=val_loss)
"""


def test_checkpoint_dir_keeps_the_last_and_the_best(project) -> None:
    project.write("retain.py", RETAIN)
    project.write("exp.yaml", "name: retain\njobs:\n  fit: {run: python retain.py}\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    run = only_run(project)
    folder = project.root / ".mayuri" / "runs" / run["id"] / "checkpoints" / "1"
    assert sorted(p.name for p in folder.glob("*.pt")) == ["epoch-1.pt", "epoch-3.pt", "epoch-4.pt"]


def test_a_scheduler_that_must_stop_records_its_runs_before_it_ends(project) -> None:
    """Fenced (its row taken over behind its back), it stops its job and leaves no run `running`."""
    train_project(project)
    proc = start_mayuri(project.root, "run", "exp.yaml", env={"TRAIN_DELAY": "2"})
    first = wait_for_steps(project, 0)
    wait_for(lambda: query(project.db, "SELECT COUNT(*) FROM attempt WHERE status = 'running'") == [(1,)],
             message="the job running")
    conn = sqlite3.connect(project.db, timeout=30)
    with conn:
        conn.execute("UPDATE scheduler SET status = 'dead'")
    conn.close()
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    run = only_run(project)
    assert run["status"] == "orphaned" and "could not handle" in project.show(first)["error"]
    assert processes_with_run_ids([first]) == []
    store_is_sound(project.db)
