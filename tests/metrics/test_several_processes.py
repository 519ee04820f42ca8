"""Several processes of one job (fork and spawn workers, threads) all record their outputs and metrics."""

from __future__ import annotations

from tests.conftest import Project

JOB = """
import multiprocessing as mp
import threading
import mayuri

def outputs(worker):
    for n in range(20):
        mayuri.output(f"w{worker}_{n}", n)

def metrics(worker):
    for step in range(100):
        mayuri.log({f"worker{worker}/loss": step / 100}, step=step)

if __name__ == "__main__":
    fork = mp.get_context("fork")
    workers = [fork.Process(target=outputs, args=(w,)) for w in range(4)]
    workers.append(fork.Process(target=metrics, args=(0,)))
    workers.append(mp.get_context("spawn").Process(target=metrics, args=(1,)))
    threads = [threading.Thread(target=metrics, args=(2,))]
    for started in [*workers, *threads]:
        started.start()
    mayuri.output("parent", 1)
    for started in [*workers, *threads]:
        started.join()
    assert all(w.exitcode == 0 for w in workers)
"""


def test_outputs_and_metrics_from_every_process(project: Project) -> None:
    project.write("job.py", JOB)
    outputs = ", ".join(["parent"] + [f"w{w}_{n}" for w in range(4) for n in range(20)])
    project.write("exp.yaml", f"""
        name: procs
        jobs:
          many:
            run: python job.py
            outputs: [{outputs}]
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = project.runs()[0]["id"]
    detail = project.show(run_id)
    assert len(detail["outputs"]) == 81
    metrics = detail["metrics"]
    for worker in range(3):  # a fork worker, a spawn worker, a thread
        assert metrics[f"worker{worker}/loss"]["count"] == 100, metrics
