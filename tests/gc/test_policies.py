"""Each gc policy through the real `mayuri gc` command, against a real store filled by the store's writers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit

from tests.gc.gc_helpers import Filler, disk_usage, gc_json


def collected(plan: dict[str, Any]) -> set[str]:
    return {r["id"] for r in plan["plan"]["runs"]}


def test_older_than_collects_only_runs_unused_for_longer(project: Any, filler: Filler) -> None:
    old = filler.run(age_days=40)
    recent = filler.run(age_days=5)
    code, out = gc_json(project, "--older-than", "30d", "--yes")
    assert code == 0
    assert collected(out) == {old}
    assert filler.status(old) == "collected" and filler.status(recent) == "succeeded"
    assert not (filler.store.runs / old).exists() and (filler.store.runs / recent).exists()


def test_a_cache_hit_is_a_use(project: Any, filler: Filler) -> None:
    from mayuri.store.records import record_hits

    reused = filler.run(age_days=40)
    record_hits(filler.store, [reused])
    code, out = gc_json(project, "--older-than", "30d", "--dry-run")
    assert code == 0 and collected(out) == set()


def test_a_cache_hit_still_in_the_hit_log_is_a_use(project: Any, filler: Filler) -> None:
    import time

    from mayuri.store.gc_records import tombstone_run
    from mayuri.store.hit_log import append_hits

    reused, other = filler.run(age_days=40), filler.run(age_days=40)
    append_hits(filler.store.root, [reused], time.time())
    _, out = gc_json(project, "--older-than", "30d", "--dry-run")
    assert collected(out) == {other}
    assert out["plan"]["kept"][reused] == "used within the grace period"
    # A use logged after gc planned: the sweep's last look at the run folds the log first.
    seen = time.time() - 40 * 86400
    append_hits(filler.store.root, [other], time.time())
    assert not tombstone_run(filler.store, other, last_use_seen=seen, planned_at=seen, drop_metrics=False)
    assert filler.status(other) == "succeeded"
    hits = filler.store.db.execute_sql("SELECT hits FROM run WHERE id = ?", (other,)).fetchone()[0]
    assert hits == 1


def test_keep_last_keeps_the_newest_succeeded_runs_of_each_job(
    project: Any, filler: Filler
) -> None:
    trains = [filler.run("train", age_days=10 - i) for i in range(4)]
    evals = [filler.run("eval", age_days=10 - i) for i in range(2)]
    failed = filler.run("train", status="failed", age_days=0.5)
    _, out = gc_json(project, "--keep-last", "2", "--dry-run")
    assert collected(out) == set(trains[:2]) | {failed}
    assert all(out["plan"]["kept"][r] == "one of the last 2 of its job" for r in trains[2:] + evals)


def test_failed_collects_only_failed_and_cancelled_runs(project: Any, filler: Filler) -> None:
    ok = filler.run(age_days=3)
    bad = filler.run(status="failed", age_days=3)
    stopped = filler.run(status="cancelled", age_days=3)
    code, out = gc_json(project, "--failed", "--yes")
    assert code == 0 and collected(out) == {bad, stopped}
    assert filler.status(ok) == "succeeded"
    # Combined with --older-than, both must hold.
    old_bad = filler.run(status="failed", age_days=40)
    filler.run(status="failed", age_days=3)
    _, out = gc_json(project, "--failed", "--older-than", "30d", "--dry-run")
    assert collected(out) == {old_bad}


def test_max_size_collects_least_recently_used_first_until_the_store_fits(
    project: Any, filler: Filler
) -> None:
    runs = [filler.run(age_days=20 - i, size=1_000_000) for i in range(6)]
    filler.store.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database = sum(p.stat().st_size for p in filler.store.root.glob("mayuri.db*"))
    one_run = disk_usage(filler.store.runs / runs[0])
    limit = database + disk_usage(filler.store.runs, filler.store.blobs) - int(2.5 * one_run)
    _, out = gc_json(project, "--max-size", str(limit), "--dry-run")
    # Six 1 MB folders where three and a half fit: the three least recently used must go.
    assert [r["id"] for r in out["plan"]["runs"]] == runs[:3]


def test_experiment_flag_and_per_experiment_tables(project: Any, filler: Filler) -> None:
    a = filler.run(experiment="a", age_days=40)
    b = filler.run(experiment="b", age_days=40)
    _, out = gc_json(project, "--older-than", "30d", "--experiment", "a", "--dry-run")
    assert collected(out) == {a}
    config = Path(project.root / "mayuri.toml")
    # Through tomlkit, as a user's editor would: `mayuri init` already wrote a [gc] table.
    document = tomlkit.parse(config.read_text())
    document["gc"]["older_than"] = "30d"
    document["gc"]["experiment"] = {"b": {"older_than": "60d"}}
    config.write_text(tomlkit.dumps(document))
    _, out = gc_json(project, "--dry-run")
    assert collected(out) == {a}
    # A flag overrides the file for every experiment.
    _, out = gc_json(project, "--older-than", "10d", "--dry-run")
    assert collected(out) == {a, b}


def test_bad_policy_values_are_usage_errors(project: Any) -> None:
    done = project.mayuri("gc", "--older-than", "soon", "--dry-run")
    assert done.returncode == 2 and "--older-than: not a duration" in done.stderr
    assert "Traceback" not in done.stderr
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text() + "\n[gc.experiment.x]\nolder = 3\n")
    done = project.mayuri("gc", "--dry-run")
    assert done.returncode == 2 and "[gc.experiment.x] older: unknown key" in done.stderr


def test_a_bad_gc_value_is_refused_with_its_line(project: Any) -> None:
    # `[gc]` is parsed once, with the rest of mayuri.toml: the error names where the value is.
    config = project.root / "mayuri.toml"
    lines = config.read_text().splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("grace ="))
    lines[at] = 'grace = "soon"'
    config.write_text("\n".join(lines) + "\n")
    done = project.mayuri("gc", "--dry-run")
    message = " ".join(done.stderr.split())
    assert done.returncode == 2 and "[gc] grace: not a duration" in message, message
    assert f"mayuri.toml:{at + 1}" in message and "Traceback" not in message


def test_pinned_runs_are_kept_whatever_the_policy(project: Any, filler: Filler) -> None:
    run = filler.run(age_days=400)
    assert project.mayuri("pin", run[:8]).returncode == 0
    _, out = gc_json(project, "--older-than", "1d", "--keep-last", "0", "--dry-run")
    assert collected(out) == set() and out["plan"]["kept"][run] == "pinned"
    done = project.mayuri("cache", "rm", run[:10], "--yes", "--json")
    assert done.returncode == 0 and filler.status(run) == "succeeded"
    assert project.mayuri("unpin", run[:8]).returncode == 0
    _, out = gc_json(project, "--older-than", "1d", "--yes")
    assert collected(out) == {run}
    done = project.mayuri("pin", run[:8])
    assert done.returncode == 2 and "already collected" in done.stderr


def test_active_runs_are_never_touched(project: Any, filler: Filler) -> None:
    running = filler.run(status="running", age_days=100)
    queued = filler.run(status="queued", age_days=100)
    _, out = gc_json(project, "--older-than", "0s", "--grace", "0s", "--keep-last", "0", "--yes")
    assert collected(out) == set()
    assert out["plan"]["kept"] == {running: "running", queued: "queued"}
    assert (filler.store.runs / running / "out.bin").exists()
    done = project.mayuri("cache", "rm", "train", "--yes", "--json")
    assert done.returncode == 0 and (filler.store.runs / queued).exists()


def test_lineage_keeps_upstream_folders_that_kept_runs_point_into(
    project: Any, filler: Filler
) -> None:
    data = filler.run("data", age_days=50)
    unused = filler.run("data", age_days=50)
    path = str(filler.store.runs / data / "out.bin")
    train = filler.run("train", age_days=1, params={"data": path}, parents={"data": data})
    # The parent of an active run is kept even when nothing names its folder.
    parent = filler.run("prep", age_days=50)
    filler.run("use", status="running", parents={"prep": parent})
    _, out = gc_json(project, "--older-than", "30d", "--yes")
    assert collected(out) == {unused}
    assert out["plan"]["kept"][data] == f"needed by run {train[:8]}"
    assert (filler.store.runs / data / "out.bin").exists() and (filler.store.runs / parent).exists()
    # Once the child goes too, so may its upstream.
    filler.store.db.execute_sql(
        "UPDATE run SET last_used_at = last_used_at - 60 * 86400 WHERE id = ?", (train,)
    )
    _, out = gc_json(project, "--older-than", "30d", "--yes")
    assert collected(out) == {data, train}


def test_tombstones_keep_the_record_and_purge_removes_it(project: Any, filler: Filler) -> None:
    code = filler.code("x = 1\n")
    parent = filler.run("data", age_days=40, code=[code])
    child = filler.run("train", age_days=40, parents={"data": parent})
    filler.store.db.execute_sql("INSERT INTO metric_key (name) VALUES ('loss')")
    filler.store.db.execute_sql(
        "INSERT INTO metric_summary (run_id, key_id, last, count) VALUES (?, 1, 0.5, 3)", (parent,)
    )
    filler.store.db.execute_sql(
        "INSERT INTO metric (run_id, key_id, step, value, logged_at) VALUES (?, 1, 0, 0.5, 0)",
        (parent,),
    )
    filler.age_blobs(7200)
    blob_space = disk_usage(filler.store.blobs / code.sha512[:2])
    _, out = gc_json(project, "--older-than", "30d", "--yes")
    assert collected(out) == {parent, child}
    # The code blob only the tombstones used is swept with them.
    assert out["result"]["categories"][1] == {"name": "blobs", "items": 1, "bytes": blob_space}
    shown = project.show(parent)
    assert shown["status"] == "collected" and shown["fingerprint"] and shown["params"]
    summary = filler.store.db.execute_sql(
        "SELECT count(*) FROM metric_summary WHERE run_id = ?", (parent,)
    )
    assert summary.fetchone()[0] == 1
    # --metrics drops the points of tombstones, never their summary.
    _, out = gc_json(project, "--metrics", "--yes")
    assert filler.store.db.execute_sql("SELECT count(*) FROM metric").fetchone()[0] == 0
    assert filler.store.db.execute_sql("SELECT count(*) FROM metric_summary").fetchone()[0] == 1
    _, out = gc_json(project, "--purge", "--vacuum", "--yes")
    assert filler.store.db.execute_sql("SELECT count(*) FROM run").fetchone()[0] == 0


def test_purge_keeps_a_tombstone_that_a_kept_runs_lineage_names(
    project: Any, filler: Filler
) -> None:
    parent = filler.run("data", age_days=40)
    child = filler.run("train", age_days=1, parents={"data": parent})
    _, out = gc_json(project, "--older-than", "30d", "--purge", "--yes")
    assert collected(out) == {parent}
    assert filler.status(parent) == "collected"
    assert project.show(child)["status"] == "succeeded"


def test_reusable_runs_of_an_experiment_being_run_are_kept(project: Any, filler: Filler) -> None:
    """A live `mayuri run` records its cache hits only at its end: its experiment's results must stay."""
    import os
    import socket
    import time

    from mayuri.process_identity import boot_id, create_time

    reusable = filler.run(age_days=40)
    failed = filler.run(status="failed", age_days=40)
    other = filler.run(experiment="other", age_days=40)
    now = time.time()
    filler.store.db.execute_sql(
        "INSERT INTO scheduler (id, host, boot_id, pid, pid_create_time, user, experiment, status, "
        "started_at, heartbeat_at) VALUES ('s1', ?, ?, ?, ?, 'me', 'exp', 'running', ?, ?)",
        (socket.gethostname(), boot_id(), os.getpid(), create_time(os.getpid()), now, now),
    )
    _, out = gc_json(project, "--older-than", "30d", "--yes")
    assert collected(out) == {failed, other}
    assert out["plan"]["kept"][reusable].startswith("reusable while `mayuri run`")
    # Once that scheduler is gone (a dead pid here), the result may go.
    filler.store.db.execute_sql("UPDATE scheduler SET pid_create_time = 1")
    _, out = gc_json(project, "--older-than", "30d", "--yes")
    assert collected(out) == {reusable}
