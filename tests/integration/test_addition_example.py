"""The README's example end to end: data, a learning-rate sweep of a tiny transformer, pick, test.

Runs the real files of examples/addition/ in a temporary project, with the
real CLI (`mayuri test` runs what the test needs, then checks `expect`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import Project

pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "addition"


@pytest.mark.slow
def test_addition_example_trains_picks_and_passes_its_test(project: Project) -> None:
    shutil.copytree(EXAMPLE, project.root / "examples" / "addition",
                    ignore=shutil.ignore_patterns("__pycache__"))
    done = project.mayuri("test", "examples/addition/exp.yaml", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = {(r["job"], r["params"].get("lr")): r for r in project.runs()}
    assert {job for job, _ in runs} == {"data", "train", "pick", "accuracy"}
    import mayuri

    store = project.root / ".mayuri"
    trains = mayuri.runs(job="train", store=store)
    assert sorted(r.params["lr"] for r in trains) == [0.001, 0.003]
    for run in trains:
        loss = run.metrics("loss")
        assert len(loss) == run.params["steps"] // 10 and loss.steps[-1] == run.params["steps"]
        assert run.artifacts == ["model"] and (run.artifact("model") / "weights.pt").is_file()
    best = max(trains, key=lambda r: r.best("val_accuracy", mode="max"))
    (pick,) = mayuri.runs(job="pick", store=store)
    assert pick.outputs["best_model"] == best.outputs["model"]
    (test,) = mayuri.runs(job="accuracy", store=store)
    assert test.outputs["accuracy"] >= 0.9 and test.best("accuracy", mode="max") >= 0.9
