"""The `ray` executor against a real Ray cluster started here: a head (no GPU) and a worker node (2 fake GPUs).

Jobs that ask for a GPU can only run on the worker node; with `files: copy`
they run in their node's copy of the project, not in the project folder. Every test
drives the real CLI in a temporary project. The cluster is one per module
(about 20 s to start), on one xdist worker (`xdist_group`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mayuri.store import open_store
from mayuri.store.gpu_holder_queries import gpu_holders
from tests.conftest import Project

pytest.importorskip("ray", reason="Ray is not installed (pip install 'mayuri[ray]'): the ray executor's tests need it")

from tests.ray.cluster import Cluster, start_cluster  # noqa: E402 - after the skip: it needs nothing of Ray, but is for it

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

JOB = """
import os, sys, time
from pathlib import Path
import mayuri
p = mayuri.params()
print("cwd", os.getcwd(), flush=True)
print("shipped", os.path.exists("secret/key.txt"), os.path.exists("util/helper.py"), flush=True)
print("gpus", os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("CUDA_DEVICE_ORDER"), flush=True)
Path("/proc/self").exists() and Path(p["pidfile"]).write_text(str(os.getpid())) if p.get("pidfile") else None
for step in range(3):
    mayuri.log(step=step, loss=1.0 / (step + 1))
print("first", flush=True)
resumed = mayuri.resume_from()
if resumed is not None:
    print("resumed", (resumed / "ckpt.txt").read_text(), flush=True)
if p.get("batch_size", 0) > 8:
    (mayuri.checkpoint_dir() / "ckpt.txt").write_text(f"step 2 of attempt {os.environ['MAYURI_ATTEMPT']}")
    sys.stderr.write("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\\n")
    sys.exit(1)
flag = p.get("wait_for")
if flag and int(os.environ["MAYURI_ATTEMPT"]) <= p.get("wait_attempts", 1):
    while not Path(flag).exists():
        time.sleep(0.05)
data = Path(p["data"]).read_text() if p.get("data") else ""
Path(p["out"], "model.txt").write_text("trained on " + data)
mayuri.artifact(Path(p["out"], "model.txt"))
if p.get("product"):
    Path("results").mkdir(exist_ok=True)
    Path("results", "summary.txt").write_text("summary of " + data)
mayuri.output("score", 0.5)
"""

PREPARE = """
from pathlib import Path
import mayuri
p = mayuri.params()
Path(p["out"], "data.txt").write_text("prepared data")
mayuri.output("data", str(Path(p["out"], "data.txt")))
"""

PIPELINE = """
jobs:
  prepare:
    run: python prepare.py
    params: {out: "${mayuri.run_dir}"}
    resources: {labels: [worker]}
  train:
    run: python train.py
    depends_on: {prepare: {data: data}}
    params: {out: "${mayuri.run_dir}", lr: 0.1, product: true}
    resources: {gpus: 1}
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = start_cluster(worker_gpus=2, worker_cpus=2)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def ray_project(project: Project, cluster: Cluster) -> Project:
    project.write("train.py", JOB)
    project.write("prepare.py", PREPARE)
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text() + f'\n[executor.ray]\naddress = "{cluster.address}"\nfiles = "copy"\n')
    return project


def _ray_env() -> dict[str, str]:
    # RAY_ADDRESS would win over mayuri.toml: the tests name the cluster there.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return env


@contextlib.contextmanager
def _in_background(project: Project) -> Iterator[subprocess.Popen[str]]:
    """`mayuri run exp.yaml --executor ray` in the background; killed (by its pid) if it still runs at the end."""
    running = subprocess.Popen([sys.executable, "-m", "mayuri", "run", "exp.yaml", "--executor", "ray"],
                               cwd=project.root, env=_ray_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        yield running
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()


def _waiting_job(project: Project, tmp_path: Path, more: str = "") -> Path:
    """exp.yaml: one GPU job that writes its pid to a file, then waits for a flag that never comes; the pid file.

    `more`: further keys of the job, each on a line of its own.
    """
    pidfile = tmp_path / "job.pid"
    keys = "".join(f"\n    {line}" for line in more.splitlines() if line.strip())
    project.root.joinpath("exp.yaml").write_text(
        "jobs:\n  train:\n    run: python train.py\n"
        f"    params: {{out: \"${{mayuri.run_dir}}\", wait_for: \"{tmp_path / 'never'}\", pidfile: \"{pidfile}\"}}\n"
        f"    resources: {{gpus: 1}}{keys}\n")
    return pidfile


def _flag_job(project: Project, tmp_path: Path) -> Path:
    """exp.yaml: one GPU job that logs, prints `first`, then waits for a flag file; the flag."""
    flag = tmp_path / "go"
    project.root.joinpath("exp.yaml").write_text(
        "jobs:\n  train:\n    run: python train.py\n"
        f"    params: {{out: \"${{mayuri.run_dir}}\", wait_for: \"{flag}\"}}\n    resources: {{gpus: 1}}\n")
    return flag


def _started(project: Project, running: subprocess.Popen[str]) -> Path:
    """Wait until the run's first line reached the head's stdout.log; its run folder."""
    _wait("the run", lambda: project.runs(), running=running)
    run_dir = Path(project.show(project.runs()[0]["id"])["run_dir"])
    _wait("its first line on the head", lambda: "first" in (run_dir / "stdout.log").read_text(), running=running)
    return run_dir


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def _wait(what: str, check: object, timeout: float = 120, running: subprocess.Popen[str] | None = None) -> None:
    """Wait until `check()`; with `running` (the `mayuri run` that should bring it about), fail at once if it ended."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if running is not None and running.poll() is not None:
            out, err = running.communicate()
            raise AssertionError(f"`mayuri run` ended (exit {running.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            said = ""
            if running is not None:
                running.kill()
                out, err = running.communicate()
                said = f"; what `mayuri run` said:\n{out[-2000:]}\n{err[-4000:]}"
            raise AssertionError(f"timed out waiting for {what}{said}")
        time.sleep(0.1)


def _run_of(project: Project, job: str) -> dict:
    runs = [r for r in project.runs() if r["job"] == job]
    assert runs, project.runs()
    return runs[0]


def test_a_pipeline_runs_on_the_worker_node_with_its_files_copied_and_comes_back_whole(
    ray_project: Project, cluster: Cluster, tmp_path: Path
) -> None:
    project = ray_project
    project.write("exp.yaml", PIPELINE)
    project.write("secret/key.txt", "never shipped")
    project.write("util/helper.py", "")
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text() + 'exclude = ["secret/**"]\n')
    done = project.mayuri("run", "exp.yaml", "--executor", "ray", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    train = project.show(_run_of(project, "train")["id"])
    run_dir = Path(train["run_dir"])
    out = (run_dir / "stdout.log").read_text()
    # It ran in its node's copy of the project (not the project folder), without what `exclude` names,
    # on a GPU Ray gave it.
    cwd = out.split("cwd ", 1)[1].split("\n", 1)[0]
    assert Path(cwd).resolve() != project.root.resolve()
    assert Path(cwd).parent.name == "projects" and Path(cwd).is_relative_to(cluster.folder / "tmp"), cwd
    assert "shipped False True" in out
    assert "gpus" in out and "PCI_BUS_ID" in out
    # The upstream file reached the node; the run's files, metrics, artifact and outputs reached the head.
    assert (run_dir / "model.txt").read_text() == "trained on prepared data"
    # The upstream's output names the head's file, not its node's (which is gone): as for a local run.
    prepared = project.show(_run_of(project, "prepare")["id"])
    assert prepared["outputs"]["data"] == str(Path(prepared["run_dir"]) / "data.txt")
    assert train["outputs"] == {"score": 0.5}
    assert train["metrics"]["loss"]["count"] == 3
    assert [a["name"] for a in train["artifacts"]] == ["model.txt"]
    assert [c["path"] for c in train["closure"] if c["role"] == "code"] == ["train.py"]
    # What it made in its copy of the project is in the project, as a local job's product would be.
    assert (project.root / "results" / "summary.txt").read_text() == "summary of prepared data"
    assert [c["path"] for c in train["closure"] if c["role"] == "product"] == ["results/summary.txt"]
    # No node opened a store, and none kept a run folder (nor the upstream files it was sent) once its
    # attempt ended: all of it is on the head.
    assert list((cluster.folder / "tmp").glob("mayuri-ray-*/store/runs"))
    assert not list((cluster.folder / "tmp").glob("mayuri-ray-*/store/runs/*"))
    assert not list((cluster.folder / "tmp").glob("mayuri-ray-*/store/mayuri.db"))
    assert train["fingerprint"]
    # Where it ran: the executor, Ray's task id, the node and its GPU by UUID.
    attempt = train["attempts"][0]
    assert attempt["executor"] == "ray" and attempt["executor_ref"] and attempt["node"]
    assert len(attempt["gpus"]) == 1 and attempt["gpus"][0].startswith("GPU-fake-"), attempt
    assert _run_of(project, "train")["where"] == f"ray:{attempt['node']}"

    # Again: all cached, without Ray being imported (a `ray` that cannot be imported is first on the path).
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('ray must not be imported by an all-cached run')\n")
    again = project.mayuri("run", "exp.yaml", "--executor", "ray", env={"PYTHONPATH": str(fake.parent)})
    assert again.returncode == 0 and again.stderr.count("cached") >= 2, again.stdout + again.stderr
    # The same jobs run locally are cache hits too: the same fingerprint anywhere.
    local = project.mayuri("run", "exp.yaml", "--executor", "local", env={"MAYURI_FAKE_GPUS": "1x16GiB"})
    assert local.returncode == 0 and "2 jobs: 2 cached" in local.stderr, local.stdout + local.stderr


def test_logs_and_metrics_reach_the_head_while_the_job_runs(ray_project: Project, tmp_path: Path) -> None:
    project = ray_project
    flag = _flag_job(project, tmp_path)
    with _in_background(project) as running:
        _started(project, running)
        with sqlite3.connect(project.db) as db:
            _wait("its metrics in the store", lambda: db.execute("SELECT count(*) FROM metric").fetchone()[0] >= 3)
            # Where it runs is in the store while it runs (the GPU screen shows it), not only at its end.
            node, gpus = db.execute("SELECT node, gpus FROM attempt WHERE status = 'running'").fetchone()
            # Its CPU and memory, sampled on the node, reach the store while it runs, as a local job's do.
            _wait("its system metrics", lambda: db.execute(
                "SELECT count(*) FROM metric JOIN metric_key ON metric_key.id = metric.key_id "
                "WHERE metric_key.name = 'sys/rss_bytes' AND metric.value > 0").fetchone()[0] >= 1, running=running)
        store = open_store(project.root / ".mayuri")
        try:
            holders = [(h.gpu, h.host, h.job) for h in gpu_holders(store)]
        finally:
            store.close()
        assert running.poll() is None
        assert node and json.loads(gpus)[0].startswith("GPU-fake-"), (node, gpus)
        assert holders == [(json.loads(gpus)[0], node, "train")], holders
        flag.write_text("go")
        out, err = running.communicate(timeout=120)
    assert running.returncode == 0, out + err


def test_out_of_memory_on_the_cluster_is_retried_with_scaled_params(ray_project: Project) -> None:
    project = ray_project
    project.write("exp.yaml", """
        jobs:
          train:
            run: python train.py
            params: {out: "${mayuri.run_dir}", batch_size: 16}
            resources: {gpus: 1}
            retry: {oom: {max: 2, scale: {batch_size: 0.5}}}
        """)
    done = project.mayuri("run", "exp.yaml", "--executor", "ray", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    run = project.show(project.runs()[0]["id"])
    attempts = run["attempts"]
    assert [(a["cause"], a["params"]["batch_size"]) for a in attempts] == [("gpu_oom", 16), (None, 8)]
    # The checkpoint the first attempt wrote on its node came to the head and went to the retry's node.
    assert "resumed step 2 of attempt 1" in (Path(run["run_dir"]) / "stdout.log").read_text()


def test_with_shared_files_the_job_runs_in_the_project_and_writes_the_run_folder_in_place(
    ray_project: Project
) -> None:
    project = ray_project
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text().replace('files = "copy"', 'files = "shared"'))
    project.write("exp.yaml", PIPELINE)
    done = project.mayuri("run", "exp.yaml", "--executor", "ray", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    train = project.show(_run_of(project, "train")["id"])
    out = (Path(train["run_dir"]) / "stdout.log").read_text()
    assert f"cwd {project.root}" in out
    assert (Path(train["run_dir"]) / "model.txt").read_text() == "trained on prepared data"
    assert train["metrics"]["loss"]["count"] == 3 and train["outputs"] == {"score": 0.5} and train["fingerprint"]


def test_cancel_stops_a_remote_job_and_its_processes(ray_project: Project, tmp_path: Path) -> None:
    project = ray_project
    pidfile = _waiting_job(project, tmp_path)
    with _in_background(project) as running:
        _wait("the job to start", pidfile.exists, running=running)
        job_pid = int(pidfile.read_text())
        done = project.mayuri("cancel", project.runs()[0]["id"], env=_ray_env())
        assert done.returncode == 0, done.stdout + done.stderr
        running.communicate(timeout=120)
    assert project.runs()[0]["status"] == "cancelled"
    _wait("the job's process to be gone", lambda: _gone(job_pid), timeout=30)


def test_a_killed_worker_node_ends_the_attempt_as_node_lost_and_the_retry_runs_on_another(
    ray_project: Project, cluster: Cluster, tmp_path: Path
) -> None:
    project = ray_project
    pidfile = _waiting_job(project, tmp_path, "retry: {failed: 1}")
    with _in_background(project) as running:
        _wait("the job to start", pidfile.exists, running=running)
        job_pid = int(pidfile.read_text())
        cluster.stop_node("worker")
        _wait("the job's process to be gone with its node", lambda: _gone(job_pid), 60)
        # The retry waits for a node with a GPU: a new one joins.
        cluster.add_worker("worker", gpus=2)
        out, err = running.communicate(timeout=240)
    assert running.returncode == 0, out + err
    attempts = project.show(project.runs()[0]["id"])["attempts"]
    assert [a["cause"] for a in attempts] == ["node_lost", None], attempts


def test_a_job_no_node_could_hold_is_refused_before_anything_runs(ray_project: Project) -> None:
    project = ray_project
    project.write("exp.yaml", """
        jobs:
          big:
            run: python train.py
            resources: {gpus: 3}
        """)
    done = project.mayuri("run", "exp.yaml", "--executor", "ray", timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "job 'big'" in done.stderr and "largest node has 2 GPU(s)" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and project.runs() == []
    project.write("exp.yaml", """
        jobs:
          tpu:
            run: python train.py
            resources: {labels: [tpu]}
        """)
    done = project.mayuri("run", "exp.yaml", "--executor", "ray", timeout=120)
    assert done.returncode == 2 and "job 'tpu'" in done.stderr and "label tpu" in done.stderr, done.stderr


def test_an_unreachable_cluster_or_a_missing_ray_is_refused_before_anything_runs(
    ray_project: Project, tmp_path: Path
) -> None:
    project = ray_project
    project.write("exp.yaml", 'jobs:\n  hello: {run: "python -c pass"}\n')
    done = project.mayuri("run", "exp.yaml", "--executor", "ray", env={"RAY_ADDRESS": "127.0.0.1:9"})
    assert done.returncode == 2 and "cannot reach the Ray cluster at 127.0.0.1:9" in done.stderr, done.stderr
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no ray here')\n")
    done = project.mayuri("run", "exp.yaml", "--executor", "ray", env={"PYTHONPATH": str(fake.parent)})
    assert done.returncode == 2 and "pip install 'mayuri[ray]'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and project.runs() == []
    assert json.loads(project.mayuri("runs", "--json").stdout) == []


def test_a_file_that_differed_on_the_node_makes_the_run_not_reusable_and_is_named(
    ray_project: Project, tmp_path: Path
) -> None:
    project = ray_project
    flag = _flag_job(project, tmp_path)
    with _in_background(project) as running:
        _started(project, running)
        # The head's train.py is no longer what was shipped to the node.
        with open(project.root / "train.py", "a") as handle:
            handle.write("\n# edited on the head while the job ran\n")
        flag.write_text("go")
        out, err = running.communicate(timeout=120)
    assert running.returncode == 0, out + err
    run = project.show(project.runs()[0]["id"])
    assert run["status"] == "succeeded" and run["fingerprint"] is None
    assert "train.py" in run["error"] and "differed from the head's" in run["error"], run["error"]


def test_a_head_killed_with_9_leaves_no_remote_job_running_and_the_next_run_settles_it(
    ray_project: Project, tmp_path: Path
) -> None:
    project = ray_project
    pidfile = _waiting_job(project, tmp_path)
    with _in_background(project) as running:
        _wait("the job to start", pidfile.exists, running=running)
        job_pid = int(pidfile.read_text())
        running.kill()
        running.communicate()
    # Ray stops the tasks of a driver that is gone; the worker's shepherd then kills the job.
    _wait("the job's process to be gone with its head", lambda: _gone(job_pid), 180)
    done = project.mayuri("doctor", env=_ray_env())
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert project.runs()[0]["status"] not in ("running", "starting"), project.runs()[0]


def test_a_timeout_stops_the_remote_job(ray_project: Project, tmp_path: Path) -> None:
    project = ray_project
    pidfile = _waiting_job(project, tmp_path, "timeout: 3s")
    done = project.mayuri("run", "exp.yaml", "--executor", "ray", timeout=300)
    assert done.returncode != 0 and "timed out" in done.stderr, done.stdout + done.stderr
    assert [a["status"] for a in project.show(project.runs()[0]["id"])["attempts"]] == ["timeout"]
    _wait("the job's process to be gone", lambda: _gone(int(pidfile.read_text())), timeout=30)
