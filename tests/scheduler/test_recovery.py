"""Crash recovery: kill -9 of a scheduler (test 9), pid reuse (test 10), SIGSTOP fencing (test 11),
and `mayuri doctor`."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

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


def two_gpu_jobs(project, seconds: str = "60") -> None:
    project.write("exp.yaml", f"""
        name: crash
        jobs:
          train:
            run: {fake("--sleep", seconds)}
            params: {{i: 0}}
            sweep: {{i: [1, 2]}}
            resources: {{gpus: 1, gpu_memory: 1GiB}}
        """)


def test_kill_9_of_a_scheduler_then_recovery(project) -> None:
    """Its jobs are left running (adoptable), keep their GPUs, and are recorded from their supervisor's record."""
    two_gpu_jobs(project)
    env = {"MAYURI_FAKE_GPUS": "2x16GiB"}
    proc = start_mayuri(project.root, "run", "exp.yaml", env=env)
    wait_for(lambda: project.db.exists() and len(running_pids(project.db)) == 2, message="two jobs")
    ids = [r["id"] for r in project.runs()]
    pids = running_pids(project.db)
    assert query(project.db, "SELECT COUNT(*) FROM gpu_lease") == [(2,)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    try:
        done = project.mayuri("doctor", "--no-wait")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "2 job(s) still running after their scheduler died" in done.stdout
        assert {r["status"] for r in project.runs()} == {"running"}
        assert query(project.db, "SELECT COUNT(*) FROM gpu_lease") == [(2,)]  # still theirs
    finally:
        for pid in pids:  # the jobs die; their shepherd records how
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: processes_with_run_ids(ids) == [], message="jobs gone")
    done = project.mayuri("doctor")
    assert "2 run(s) of a dead scheduler recorded" in done.stdout, done.stdout
    assert {r["status"] for r in project.runs()} == {"failed"}
    assert {r["cause"] for r in attempts(project.db)} <= {"signal", "host_oom_suspected"}
    store_is_sound(project.db)
    # The next run runs them again (failed runs are not cached), each exactly once more.
    two_gpu_jobs(project, "0.1")
    again = project.mayuri("run", "exp.yaml", env=env)
    assert again.returncode == 0, again.stderr
    assert query(project.db, "SELECT COUNT(*) FROM run WHERE status = 'succeeded'") == [(2,)]


def test_doctor_waits_for_the_gpu_jobs_of_a_dead_scheduler_and_frees_their_leases(project) -> None:
    two_gpu_jobs(project, "1.5")
    env = {"MAYURI_FAKE_GPUS": "2x16GiB"}
    proc = start_mayuri(project.root, "run", "exp.yaml", env=env)
    wait_for(lambda: project.db.exists() and len(running_pids(project.db)) == 2, message="two jobs")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert query(project.db, "SELECT COUNT(*) FROM gpu_lease") == [(2,)]
    done = project.mayuri("doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "waiting for 2 job(s) of a dead scheduler to end" in done.stderr
    assert {r["status"] for r in project.runs()} == {"succeeded"}
    assert query(project.db, "SELECT COUNT(*) FROM gpu_lease") == [(0,)]
    store_is_sound(project.db)


def test_the_next_run_recovers_without_doctor(project) -> None:
    """Jobs of a dead scheduler that this run would not start are left running, and recorded once ended."""
    two_gpu_jobs(project, "3")
    env = {"MAYURI_FAKE_GPUS": "2x16GiB"}
    proc = start_mayuri(project.root, "run", "exp.yaml", env=env)
    wait_for(lambda: project.db.exists() and len(running_pids(project.db)) == 2, message="two jobs")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    two_gpu_jobs(project, "0.1")
    done = project.mayuri("run", "exp.yaml", env={"MAYURI_FAKE_GPUS": "4x16GiB"})
    assert done.returncode == 0, done.stderr
    statuses = sorted(r["status"] for r in project.runs())
    assert statuses == ["running", "running", "succeeded", "succeeded"]
    wait_for(lambda: running_pids(project.db) and not any(psutil.pid_exists(p) for p in running_pids(project.db)),
             message="the first jobs end")
    wait_for(lambda: project.mayuri("doctor").returncode == 0 and
             sorted(r["status"] for r in project.runs()) == ["succeeded"] * 4, message="settled")
    store_is_sound(project.db)


def forge_running_scheduler(project, pid: int, create_time: float, boot: str, host: str) -> str:
    """A scheduler row, a running run and a lease that claim a live process that is not ours."""
    sid = uuid.uuid4().hex
    run_id = uuid.uuid4().hex
    now = time.time()
    conn = sqlite3.connect(project.db, timeout=30)
    with conn:
        conn.execute("INSERT INTO scheduler (id, host, boot_id, pid, pid_create_time, user, status, started_at, "
                     "heartbeat_at) VALUES (?, ?, ?, ?, ?, 'x', 'running', ?, ?)",
                     (sid, host, boot, pid, create_time, now, now))
        conn.execute("INSERT OR IGNORE INTO experiment (name, created_at) VALUES ('forged', ?)", (now,))
        exp = conn.execute("SELECT id FROM experiment WHERE name = 'forged'").fetchone()[0]
        conn.execute("INSERT INTO run (id, experiment_id, job, status, config_hash, created_at, user, host, run_dir, "
                     "scheduler_id) VALUES (?, ?, 'j', 'running', 'h', ?, 'x', ?, '/tmp', ?)",
                     (run_id, exp, now, host, sid))
        conn.execute("INSERT INTO attempt (run_id, number, status, pid, pid_create_time, host, started_at) "
                     "VALUES (?, 1, 'running', ?, ?, ?, ?)", (run_id, pid, create_time, host, now))
        conn.execute("INSERT INTO gpu_lease (token, host, gpu_uuid, scheduler_id, run_id, memory, boot_id, "
                     "created_at, heartbeat_at) VALUES (?, ?, 'GPU-fake-0000', ?, ?, 1, ?, ?, ?)",
                     (uuid.uuid4().hex, host, sid, run_id, boot, now, now))
    conn.close()
    return run_id


def test_pid_reuse_is_never_mistaken_for_a_live_scheduler(project, sigkill_later) -> None:
    from mayuri.process_identity import boot_id, host

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    sigkill_later.append(bystander.pid)
    created = psutil.Process(bystander.pid).create_time()
    wrong_time = forge_running_scheduler(project, bystander.pid, created - 1000, boot_id(), host())
    wrong_boot = forge_running_scheduler(project, bystander.pid, created, "another-boot", host())
    done = project.mayuri("doctor")
    assert done.returncode == 0, done.stdout
    status = dict(query(project.db, "SELECT id, status FROM run"))
    assert status[wrong_time] == "orphaned" and status[wrong_boot] == "orphaned"
    assert bystander.poll() is None, "the unrelated process must never be signalled"
    store_is_sound(project.db)


def test_a_live_scheduler_is_left_alone(project) -> None:
    from mayuri.process_identity import boot_id, host

    me = psutil.Process()
    run_id = forge_running_scheduler(project, me.pid, me.create_time(), boot_id(), host())
    done = project.mayuri("doctor")
    assert done.returncode == 0
    assert dict(query(project.db, "SELECT id, status FROM run"))[run_id] == "running"


def test_sigstop_same_host_is_never_reclaimed(project) -> None:
    two_gpu_jobs(project, "2")
    env = {"MAYURI_FAKE_GPUS": "2x16GiB", "MAYURI_LEASE_TTL": "0.4"}
    first = start_mayuri(project.root, "run", "exp.yaml", env=env)
    wait_for(lambda: project.db.exists() and len(running_pids(project.db)) == 2, message="two jobs")
    os.kill(first.pid, signal.SIGSTOP)
    try:
        time.sleep(1.2)  # three lease TTLs
        done = project.mayuri("doctor", env=env)
        assert done.returncode == 0
        assert {r["status"] for r in project.runs()} == {"running"}
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert query(project.db, "SELECT COUNT(*) FROM attempt") == [(2,)]
    store_is_sound(project.db)


def test_sigstop_other_host_is_reclaimed_and_fenced(project) -> None:
    two_gpu_jobs(project, "60")
    env = {"MAYURI_FAKE_GPUS": "2x16GiB", "MAYURI_LEASE_TTL": "0.4"}
    first = start_mayuri(project.root, "run", "exp.yaml", env={**env, "MAYURI_HOST": "elsewhere"})
    wait_for(lambda: project.db.exists() and len(running_pids(project.db)) == 2, message="two jobs")
    ids = [r["id"] for r in project.runs()]
    os.kill(first.pid, signal.SIGSTOP)
    try:
        time.sleep(1.2)  # three lease TTLs
        done = project.mayuri("doctor", env=env)
        assert done.returncode == 0
        assert {r["status"] for r in project.runs()} == {"orphaned"}
        assert query(project.db, "SELECT COUNT(*) FROM gpu_lease") == [(0,)]
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 1 and "reclaimed" in err, err
    assert processes_with_run_ids(ids) == []  # it killed its own copies
    assert {r["status"] for r in project.runs()} == {"orphaned"}  # its late writes were rejected
    assert query(project.db, "SELECT COUNT(*) FROM attempt") == [(2,)]
    store_is_sound(project.db)


def test_a_running_run_of_a_finished_scheduler_is_settled(project) -> None:
    """Whatever the scheduler row says (here: finished), a run still `running` under no live scheduler is settled."""
    from mayuri.process_identity import boot_id, host

    run_id = forge_running_scheduler(project, 2**22 + 7, 1.0, boot_id(), host())
    conn = sqlite3.connect(project.db, timeout=30)
    with conn:
        conn.execute("UPDATE scheduler SET status = 'finished'")
    conn.close()
    done = project.mayuri("doctor")
    assert done.returncode == 0, done.stdout
    assert dict(query(project.db, "SELECT id, status FROM run"))[run_id] == "orphaned"
    store_is_sound(project.db)
