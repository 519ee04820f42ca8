"""Stopping jobs: timeout, `mayuri cancel`, Ctrl-C (test 13), process trees that resist (test 12),
exit statuses (test 15), host OOM (test 16) and an output flood (test 14)."""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import psutil
from sched_helpers import (
    attempts,
    fake,
    processes_with_run_ids,
    query,
    running_pids,
    start_mayuri,
    store_is_sound,
    wait_for,
)


def test_timeout_stops_the_job_and_records_it(project) -> None:
    project.write("exp.yaml", f"""
        name: slow
        jobs:
          slow:
            run: {fake("--sleep", "30")}
            timeout: 1s
        """)
    began = time.monotonic()
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1
    assert time.monotonic() - began < 20
    [row] = attempts(project.db)
    assert row["status"] == "timeout" and row["cause"] == "timeout"
    assert project.runs()[0]["status"] == "failed"
    store_is_sound(project.db)


def test_cancel_stops_a_running_job(project) -> None:
    project.write("exp.yaml", f"""
        name: c
        jobs:
          long:
            run: {fake("--sleep", "60")}
        """)
    proc = start_mayuri(project.root, "run", "exp.yaml")
    wait_for(lambda: project.db.exists() and running_pids(project.db), message="the job to start")
    [run] = [r for r in project.runs() if r["status"] == "running"]
    done = project.mayuri("cancel", run["id"][:6])
    assert done.returncode == 0, done.stderr
    assert f"cancelled {run['id'][:8]}" in done.stdout
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert project.runs()[0]["status"] == "cancelled"
    assert processes_with_run_ids([run["id"]]) == []
    store_is_sound(project.db)


def test_ctrl_c_cancels_every_job_and_exits_130(project) -> None:
    project.write("exp.yaml", f"""
        name: c
        jobs:
          long:
            run: {fake("--sleep", "60")}
            params: {{i: 0}}
            sweep: {{i: [1, 2, 3]}}
          after:
            run: {fake()}
            depends_on: {{long: {{}}}}
        """)
    proc = start_mayuri(project.root, "run", "exp.yaml")
    wait_for(lambda: project.db.exists() and len(running_pids(project.db)) == 3, message="three jobs")
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    runs = project.runs()
    assert [r["status"] for r in runs] == ["cancelled"] * 3
    assert processes_with_run_ids([r["id"] for r in runs]) == []
    store_is_sound(project.db)


def test_a_tree_that_ignores_sigterm_and_double_forks_is_killed(project) -> None:
    project.write("mayuri.toml", "[scheduler]\nkill_grace = 1.0\n")
    project.write("exp.yaml", f"""
        name: tree
        jobs:
          stubborn:
            run: {fake("--ignore-term", "--double-fork", "--sleep", "60")}
        """)
    proc = start_mayuri(project.root, "run", "exp.yaml")
    wait_for(lambda: project.db.exists() and running_pids(project.db), message="the job to start")
    [run] = project.runs()
    wait_for(lambda: len(processes_with_run_ids([run["id"]])) >= 2, message="the grandchild")
    began = time.monotonic()
    done = project.mayuri("cancel", run["id"])
    assert done.returncode == 0, done.stderr
    wait_for(lambda: processes_with_run_ids([run["id"]]) == [], timeout=10, message="the tree to die")
    # grace (1 s) + 1 s, with room for the CLI's own start-up on a busy machine.
    assert time.monotonic() - began < 1.0 + 1.0 + 4.0
    proc.communicate(timeout=30)
    zombies = [c for c in psutil.Process().children(recursive=True) if c.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []
    store_is_sound(project.db)


def test_exit_statuses_are_recorded_truthfully(project) -> None:
    project.write("exp.yaml", f"""
        name: codes
        jobs:
          ok: {{run: {fake()}}}
          one: {{run: {fake("--exit", "1")}}}
          segv: {{run: {fake("--signal", "SIGSEGV")}}}
          killed: {{run: {fake("--signal", "SIGKILL")}}}
        """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1
    rows = {r[0]: r[1:] for r in query(
        project.db, "SELECT run.job, run.status, attempt.exit_code, attempt.signal, attempt.cause "
                    "FROM run JOIN attempt ON attempt.run_id = run.id")}
    assert rows["ok"] == ("succeeded", 0, None, None)
    assert rows["one"] == ("failed", 1, None, "exit")
    assert rows["segv"] == ("failed", None, signal.SIGSEGV, "signal")
    assert rows["killed"][:3] == ("failed", None, signal.SIGKILL)
    assert rows["killed"][3] in ("host_oom", "host_oom_suspected")


def test_host_oom_is_attributed_and_not_retried_as_gpu_oom(project, tmp_path: Path) -> None:
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    script = project.write("grow.py", f"""
        import os, signal
        # What the kernel does when a cgroup runs out: count the kill, then SIGKILL.
        open({str(events)!r}, "w").write("oom 1\\noom_kill 1\\n")
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    project.write("exp.yaml", f"""
        name: host
        jobs:
          grow:
            run: python {script}
            retry: {{oom: {{max: 3, strategy: wait, wait: 0}}}}
          alloc:
            run: {fake("--oom", "host")}
            retry: {{oom: {{max: 3, strategy: wait, wait: 0}}}}
        """)
    done = project.mayuri("run", "exp.yaml", env={"MAYURI_MEMORY_EVENTS": str(events)})
    assert done.returncode == 1
    rows = query(project.db, "SELECT run.job, attempt.cause FROM run JOIN attempt ON attempt.run_id = run.id")
    assert sorted(rows) == [("alloc", "host_oom"), ("grow", "host_oom")]


def test_output_flood_is_captured_byte_exact(project) -> None:
    project.write("exp.yaml", f"""
        name: flood
        jobs:
          flood:
            run: {fake("--stdout-bytes", str(200 * 1024 * 1024), "--stderr-bytes", str(50 * 1024 * 1024))}
        """)
    proc = start_mayuri(project.root, "run", "exp.yaml")
    beats = []
    while proc.poll() is None:
        if project.db.exists():
            try:
                beats.extend(r[0] for r in query(project.db, "SELECT heartbeat_at FROM scheduler"))
            except Exception:  # the schema may not be there yet
                pass
        time.sleep(0.2)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    run = project.runs()[0]
    folder = Path(run["run_dir"])
    assert (folder / "stdout.log").stat().st_size == 200 * 1024 * 1024
    assert (folder / "stderr.log").stat().st_size == 50 * 1024 * 1024
    distinct = sorted(set(beats))
    gaps = [b - a for a, b in itertools.pairwise(distinct)]
    assert all(gap < 2.0 for gap in gaps), gaps
    store_is_sound(project.db)


def test_a_sigchld_handler_never_turns_a_failure_into_success(project) -> None:
    import subprocess
    import sys

    project.write("exp.yaml", f"""
        name: chld
        jobs:
          one: {{run: {fake("--sleep", "0.3", "--exit", "1")}}}
          segv: {{run: {fake("--sleep", "0.3", "--signal", "SIGSEGV")}}}
        """)
    script = Path(__file__).with_name("sigchld_run.py")
    done = subprocess.run([sys.executable, str(script), "exp.yaml"], cwd=project.root, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "succeeded" not in done.stdout
    causes = {r[0] for r in query(project.db, "SELECT cause FROM attempt")}
    assert causes <= {"exit", "signal", "status_lost"}
    assert query(project.db, "SELECT COUNT(*) FROM run WHERE status = 'succeeded'") == [(0,)]
