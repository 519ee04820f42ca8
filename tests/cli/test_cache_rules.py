"""Each cache rule of DESIGN.md "Caching", through the real `mayuri run` in a temporary project."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conftest import Project

MAIN = """
    import glob
    import importlib
    import sys
    from helpers import a
    b = importlib.import_module("helpers.b")
    with open(sys.argv[sys.argv.index("--marker") + 1], "a") as marker:
        marker.write("launched\\n")
    rows = open("data/x.csv").read().splitlines()
    shards = sorted(glob.glob("data/shards/*.txt"))
    print("rows", len(rows), "shards", len(shards), "a", a.VALUE, "b", b.VALUE)
"""

EXP = """
    name: rules
    params: {lr: 0.1}
    jobs:
      train:
        run: python main.py --lr ${lr} --marker %s
"""


@pytest.fixture
def rules(project: Project, tmp_path: Path) -> tuple[Project, Path]:
    marker = tmp_path / "launches.txt"
    project.write("main.py", MAIN)
    project.write("helpers/__init__.py", "")
    project.write("helpers/a.py", "VALUE = 1\n")
    project.write("helpers/b.py", "VALUE = 2\n")
    project.write("helpers/unused.py", "VALUE = 3\n")
    project.write("data/x.csv", "a,b\n1,2\n")
    project.write("data/shards/0.txt", "zero\n")
    project.write("notes.md", "not used by any job\n")
    project.write("exp.yaml", EXP % marker)
    first = project.mayuri("run", "exp.yaml")
    assert first.returncode == 0, first.stderr
    assert "new" in first.stderr
    return project, marker


def launches(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def rerun(project: Project, *args: str) -> str:
    done = project.mayuri("run", "exp.yaml", *args)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_nothing_changed_is_cached_and_launches_nothing(rules: tuple[Project, Path]) -> None:
    project, marker = rules
    run_id = project.runs()[0]["id"]
    output = rerun(project)
    assert f"cached (run {run_id[:8]})" in output
    assert launches(marker) == 1
    assert len(project.runs()) == 1
    assert project.show(run_id)["hits"] == 1


def test_edit_of_imported_helper_reruns(rules: tuple[Project, Path]) -> None:
    project, marker = rules
    project.write("helpers/a.py", "VALUE = 10\n")
    assert "helpers/a.py changed" in rerun(project)
    assert launches(marker) == 2


def test_edit_of_helper_loaded_by_importlib_reruns(rules: tuple[Project, Path]) -> None:
    project, marker = rules
    project.write("helpers/b.py", "VALUE = 20\n")
    assert "helpers/b.py changed" in rerun(project)
    assert launches(marker) == 2


def test_edit_of_data_file_read_reruns(rules: tuple[Project, Path]) -> None:
    project, marker = rules
    project.write("data/x.csv", "a,b\n1,2\n3,4\n")
    assert "data/x.csv changed" in rerun(project)
    assert launches(marker) == 2


def test_new_file_in_globbed_folder_reruns(rules: tuple[Project, Path]) -> None:
    project, marker = rules
    project.write("data/shards/1.txt", "one\n")
    assert "data/shards/ listing changed" in rerun(project)
    assert launches(marker) == 2


def test_param_change_reruns_and_says_which(rules: tuple[Project, Path]) -> None:
    project, marker = rules
    output = rerun(project, "lr=0.2")
    assert "param lr 0.1 -> 0.2" in output
    assert launches(marker) == 2


def test_unused_file_change_is_still_cached(rules: tuple[Project, Path]) -> None:
    project, marker = rules
    project.write("helpers/unused.py", "VALUE = 30\n")
    project.write("notes.md", "edited\n")
    project.write("unrelated.txt", "a new file in the project root\n")
    assert "cached (run" in rerun(project)
    assert launches(marker) == 1


def test_touch_without_content_change_is_still_cached(rules: tuple[Project, Path]) -> None:
    project, marker = rules
    later = time.time() + 5
    for path in ("helpers/a.py", "data/x.csv", "main.py"):
        os.utime(project.root / path, (later, later))
    assert "cached (run" in rerun(project)
    # The stat cache was refreshed by that check: the next one is a pure stat.
    assert "cached (run" in rerun(project)
    assert launches(marker) == 1


def test_force_reruns(rules: tuple[Project, Path]) -> None:
    project, marker = rules
    assert "forced (--force)" in rerun(project, "--force")
    assert launches(marker) == 2


def test_reverting_a_change_reuses_the_original_run(rules: tuple[Project, Path]) -> None:
    project, marker = rules
    original = project.runs()[0]["id"]
    project.write("helpers/a.py", "VALUE = 10\n")
    rerun(project)
    project.write("helpers/a.py", "VALUE = 1\n")
    assert f"cached (run {original[:8]})" in rerun(project)
    assert launches(marker) == 2


def test_dry_run_reports_and_runs_nothing(rules: tuple[Project, Path]) -> None:
    project, marker = rules
    project.write("helpers/a.py", "VALUE = 11\n")
    done = project.mayuri("run", "exp.yaml", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "will run" in done.stdout and "helpers/a.py changed" in done.stdout
    assert launches(marker) == 1
    assert len(project.runs()) == 1


def test_closure_is_recorded_with_sha512_and_code_blobs(rules: tuple[Project, Path]) -> None:
    import hashlib

    project, _ = rules
    detail = project.show(project.runs()[0]["id"])
    closure = {(c["role"], c["path"]): c for c in detail["closure"]}
    assert ("code", "main.py") in closure
    assert ("code", "helpers/a.py") in closure
    assert ("code", "helpers/b.py") in closure
    assert ("input", "data/x.csv") in closure
    assert ("listing", "data/shards") in closure
    assert not any(path.startswith("helpers/unused") or path == "notes.md" for _, path in closure)
    digest = hashlib.sha512((project.root / "helpers/a.py").read_bytes()).hexdigest()
    assert closure[("code", "helpers/a.py")]["sha512"] == digest
    blob = project.root / ".mayuri" / "blobs" / digest[:2] / digest[2:]
    assert blob.read_bytes() == (project.root / "helpers/a.py").read_bytes()
