"""The remote job contract without an engine: a job run by the node runner spools, the head ingests.

The node's run folder is another folder than the head's (as with `files:
copy`), the store path the job is given does not exist there, and the job's
metrics and artifacts reach the head's real store only through ingestion.
"""

from __future__ import annotations

import json
import marshal
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mayuri.closure import closure_env
from mayuri.executors.remote.ingest import Ingester, SpoolReader
from mayuri.executors.remote.runner import make_spec
from mayuri.executors.remote.spool import METRICS_PREFIX
from mayuri.run_contract import (
    ATTEMPT_VAR,
    RUN_DIR_VAR,
    RUN_ID_VAR,
    STORE_VAR,
    exit_record,
    spool_dir,
)
from mayuri.store import Store
from mayuri.store.artifact_queries import artifact_files
from mayuri.store.metric_queries import metric_series

JOB = """
import os, sys, time
from pathlib import Path
import mayuri
p = mayuri.params()
for step in range(p["steps"]):
    mayuri.log(step=step, loss=1.0 / (step + 1))
Path("model.txt").write_text("weights")
folder = Path("ckpt"); folder.mkdir(exist_ok=True); (folder / "a.bin").write_bytes(b"x" * 100)
mayuri.artifact("model.txt")
mayuri.artifact(folder, name="checkpoints/last")
mayuri.output("score", 0.5)
print("hello from the node", os.environ["MAYURI_SPOOL"])
"""


def _spec(tmp_path: Path, run_id: str, head_store: Path, node_root: Path, script: str, params: dict,
          grace: float = 10.0) -> tuple[Path, Path]:
    """A runner spec whose head paths are moved to `node_root`; (spec file, node run folder)."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "job.py").write_text(script)
    head_run_dir = head_store / "runs" / run_id
    env = {"PATH": os.environ["PATH"], RUN_ID_VAR: run_id, RUN_DIR_VAR: str(head_run_dir),
           STORE_VAR: str(head_store), ATTEMPT_VAR: "1"}
    env = closure_env(env, head_run_dir / "closure" / "1", project, [head_store], head_store / "runs")
    node_project = node_root / "project"
    node_project.mkdir(parents=True)
    (node_project / "job.py").write_text(script)
    spec = make_spec(command=[sys.executable, "job.py"], shell=False, cwd=project, env=env, run_dir=head_run_dir,
                     attempt=1, grace=grace, params=params,
                     relocate=[(str(head_store), str(node_root / "store")), (str(project), str(node_project))])
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path, node_root / "store" / "runs" / run_id


def test_a_job_run_by_the_runner_spools_and_the_head_ingests_it(
    tmp_path: Path, store: Store, make_run: Callable[[Store], str]
) -> None:
    run_id = make_run(store)
    spec, node_run = _spec(tmp_path, run_id, store.root, tmp_path / "node", JOB, {"steps": 300})
    done = subprocess.run([sys.executable, "-m", "mayuri.executors.remote.runner", str(spec)], timeout=120,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr + (node_run / "stderr.log").read_text()
    # On the node: the contract's files, in the node's own run folder.
    assert json.loads((node_run / "params.json").read_text()) == {"steps": 300}
    assert "hello from the node 1" in (node_run / "stdout.log").read_text()
    assert json.loads((node_run / "outputs.json").read_text()) == {"score": 0.5}
    record = json.loads(exit_record(node_run, 1).read_text())
    assert record["exit_code"] == 0 and record["max_rss"] > 0 and record["node"]
    # The bootstrap ran on the node: its closure records are in the node's closure folder.
    assert any((node_run / "closure" / "1").iterdir())
    # The store was never opened there; nothing of the run is in the head's store yet.
    assert not (tmp_path / "node" / "store" / "mayuri.db").exists()
    assert metric_series(store, run_id, "loss")[0] == []
    assert any(name.startswith(METRICS_PREFIX) for name in os.listdir(spool_dir(node_run)))

    reader = SpoolReader(store, run_id, node_run)
    assert reader.pump() == 300
    steps, values = metric_series(store, run_id, "loss")
    assert steps == list(range(300)) and values[0] == 1.0
    found = artifact_files(store, run_id, "model.txt")
    assert found is not None and found[0] == "file" and [f.size for f in found[1]] == [7]
    folder = artifact_files(store, run_id, "checkpoints/last")
    assert folder is not None and folder[0] == "dir" and [f.relpath for f in folder[1]] == ["a.bin"]
    # Read again (a head that came back): nothing is recorded twice.
    assert SpoolReader(store, run_id, node_run).pump() == 0
    assert len(metric_series(store, run_id, "loss")[0]) == 300


def _frame(points: list[tuple[str, int, float, float]]) -> bytes:
    payload = marshal.dumps(points)
    return len(payload).to_bytes(8, "little") + payload


def test_ingestion_reads_whole_frames_only_and_goes_on_while_the_job_runs(
    tmp_path: Path, store: Store, make_run: Callable[[Store], str]
) -> None:
    run_id = make_run(store)
    run_dir = tmp_path / "run"
    spool = spool_dir(run_dir)
    spool.mkdir(parents=True)
    first, second = _frame([("acc", 0, 0.1, 1.0)]), _frame([("acc", 1, 0.2, 2.0)])
    metrics = spool / f"{METRICS_PREFIX}42.bin"
    metrics.write_bytes(first + second[:5])
    ingester = Ingester(lambda: store, interval=0.05)
    try:
        ingester.watch(run_id, run_dir)
        deadline = time.monotonic() + 30
        while metric_series(store, run_id, "acc")[0] != [0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric_series(store, run_id, "acc")[0] == [0]
        with open(metrics, "ab") as handle:
            handle.write(second[5:])
        assert ingester.finish(run_id, run_dir) >= 1
    finally:
        ingester.close()
    assert metric_series(store, run_id, "acc") == ([0, 1], [0.1, 0.2])


STUBBORN = """
import os, signal, subprocess, time
from pathlib import Path
child = subprocess.Popen(["sleep", "300"])
Path("child.pid").write_text(str(child.pid))
signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(300)
"""


def test_sigterm_to_the_runner_stops_the_jobs_whole_process_group(
    tmp_path: Path, store: Store, make_run: Callable[[Store], str]
) -> None:
    run_id = make_run(store)
    spec, node_run = _spec(tmp_path, run_id, store.root, tmp_path / "node", STUBBORN, {}, grace=1.0)
    runner = subprocess.Popen([sys.executable, "-m", "mayuri.executors.remote.runner", str(spec)])
    child_pid_file = tmp_path / "node" / "project" / "child.pid"
    try:
        deadline = time.monotonic() + 60
        while not child_pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(child_pid_file.read_text())
        runner.send_signal(signal.SIGTERM)
        code = runner.wait(60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    record = json.loads(exit_record(node_run, 1).read_text())
    # The job ignored SIGTERM: SIGKILL after the grace period, for it and its child.
    assert record["exit_code"] == -signal.SIGKILL and record["cause"] == "stopped"
    assert code == 128 + signal.SIGKILL
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists() or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"
