"""System metrics and peaks (learning from history), the estimate shown by --dry-run, and --detach."""

from __future__ import annotations

import sqlite3
import time

import psutil
from sched_helpers import fake, query, store_is_sound, wait_for

MiB = 1024**2


def test_system_metrics_and_peaks_are_recorded(project) -> None:
    project.write("exp.yaml", f"""
        name: sys
        jobs:
          big:
            run: {fake("--rss", "80", "--sleep", "1.5")}
        """)
    done = project.mayuri("run", "exp.yaml", env={"MAYURI_SAMPLE_INTERVAL": "0.3"})
    assert done.returncode == 0, done.stderr
    [(peak_rss, run_id)] = query(project.db, "SELECT peak_rss, id FROM run")
    assert peak_rss >= 80 * MiB
    keys = {r[0] for r in query(project.db, "SELECT DISTINCT metric_key.name FROM metric JOIN metric_key "
                                            "ON metric_key.id = metric.key_id WHERE run_id = ?", (run_id,))}
    assert {"sys/cpu_percent", "sys/rss_bytes"} <= keys
    [(samples,)] = query(project.db, "SELECT COUNT(*) FROM metric JOIN metric_key ON metric_key.id = metric.key_id "
                                     "WHERE name = 'sys/rss_bytes'")
    assert samples >= 2
    store_is_sound(project.db)


def test_history_gives_the_estimate_and_lets_small_jobs_share(project) -> None:
    project.write("exp.yaml", f"""
        name: hist
        jobs:
          train:
            run: {fake("--sleep", "0.8", "--param", "i=${i}")}
            params: {{i: 0}}
            sweep: {{i: [1, 2]}}
            resources: {{gpus: 1}}
        """)
    env = {"MAYURI_FAKE_GPUS": "1x16GiB"}
    plan = project.mayuri("run", "exp.yaml", "--dry-run", env=env)
    assert plan.returncode == 0, plan.stderr
    assert "to itself (no gpu_memory and no history)" in plan.stdout
    first = project.mayuri("run", "exp.yaml", env=env)
    assert first.returncode == 0, first.stderr
    spans = query(project.db, "SELECT started_at, ended_at FROM attempt ORDER BY started_at")
    assert spans[0][1] <= spans[1][0], "without history, each job gets the GPU to itself"
    # Fake GPUs report no per-process memory; record what NVML would have measured.
    conn = sqlite3.connect(project.db)
    with conn:
        conn.execute("UPDATE run SET peak_gpu_memory = ?", (2 * 1024 * MiB,))
    conn.close()
    plan = project.mayuri("run", "exp.yaml", "--dry-run", "--force", env=env)
    assert "2.0 GiB of run" in plan.stdout and "+ margin" in plan.stdout, plan.stdout
    again = project.mayuri("run", "exp.yaml", "--force", env=env)
    assert again.returncode == 0, again.stderr
    spans = query(project.db, "SELECT started_at, ended_at FROM attempt ORDER BY started_at")[2:]
    assert spans[1][0] < spans[0][1], "with a 2 GiB history, two jobs share the 16 GiB GPU"
    store_is_sound(project.db)


def test_detach_runs_in_the_background(project) -> None:
    project.write("exp.yaml", f"""
        name: bg
        jobs:
          slow:
            run: {fake("--sleep", "3")}
        """)
    began = time.monotonic()
    done = project.mayuri("run", "exp.yaml", "--detach")
    assert done.returncode == 0, done.stderr
    assert "running in the background" in done.stderr
    assert time.monotonic() - began < 15
    # It returned once the run had got past its start (detach.STARTUP_WAIT), naming its pid and how to stop it.
    assert "{started.pid}" not in done.stderr
    pid = int(done.stderr.split("as pid ")[1].split(";")[0])
    assert f"kill {pid}`" in done.stderr
    wait_for(lambda: any(r["status"] == "running" for r in project.runs()), message="the job to show as running")
    assert psutil.pid_exists(pid)
    wait_for(lambda: [r["status"] for r in project.runs()] == ["succeeded"], timeout=60, message="it to finish")
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
             message="the background scheduler to exit")
    store_is_sound(project.db)


def test_detach_reports_a_bad_file_in_the_foreground(project) -> None:
    project.write("exp.yaml", "name: bad\njobs:\n  x: {runn: true}\n")
    done = project.mayuri("run", "exp.yaml", "--detach")
    assert done.returncode == 2
    assert "runn" in done.stderr
