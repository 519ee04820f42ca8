"""Artifacts: files and folders into blobs/, deduplicated, unsafe names refused, read back as files."""

from __future__ import annotations

import sqlite3

import pytest

from mayuri.store.artifact_records import ArtifactError, check_relative
from tests.conftest import Project

SAVE = """
import os, sys
import mayuri
os.makedirs("model/sub", exist_ok=True)
open("model/weights.bin", "wb").write(b"w" * 100_000)
open("model/sub/config.json", "w").write('{"layers": 2}')
open("copy.bin", "wb").write(b"w" * 100_000)
mayuri.artifact("model")
mayuri.artifact("copy.bin", name=sys.argv[1])
"""


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../b", "x\0y", "", "C:\\\\evil", ".", "a/.."])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(ArtifactError):
        check_relative(name)


def test_safe_names_are_cleaned() -> None:
    assert check_relative("plots/./loss.png") == "plots/loss.png"
    assert check_relative("model") == "model"
    assert check_relative("epoch:3/weights.bin") == "epoch:3/weights.bin"


def _blob_files(project: Project) -> list:
    blobs = project.root / ".mayuri" / "blobs"
    return [p for p in blobs.rglob("*") if p.is_file() and p.relative_to(blobs).parts[0] != "tmp"]


def test_artifacts_are_deduplicated_and_read_back(project: Project) -> None:
    project.write("save.py", SAVE)
    project.write("exp.yaml", """
        name: art
        jobs:
          save:
            run: python save.py ${copy_name}
            params: {copy_name: first.bin}
    """)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    blobs = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _blob_files(project)}
    weights = [p for p in blobs if p.stat().st_size == 100_000]
    assert len(weights) == 1, "the same bytes saved twice in one run must make one blob"

    # A second run saving the same content copies nothing: the blob is untouched.
    done = project.mayuri("run", "exp.yaml", "copy_name=again.bin")
    assert done.returncode == 0, done.stdout + done.stderr
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _blob_files(project)}
    assert {p: after[p] for p in blobs} == blobs
    assert set(after) - set(blobs) == set(), "no new blob for content that was already stored"

    with sqlite3.connect(project.db) as con:
        rows = con.execute("SELECT name, kind, size FROM artifact ORDER BY name, run_id").fetchall()
        digests = {d for (d,) in con.execute("SELECT DISTINCT sha512 FROM artifact_file WHERE size = 100000")}
    assert ("model", "dir", 100_000 + len('{"layers": 2}')) in rows
    assert ("again.bin", "file", 100_000) in rows and ("first.bin", "file", 100_000) in rows
    assert len(digests) == 1

    import mayuri

    newest = mayuri.runs(store=project.root / ".mayuri")[0]
    assert newest.artifacts == ["again.bin", "model"]
    folder = newest.artifact("model")
    assert (folder / "sub" / "config.json").read_text() == '{"layers": 2}'
    assert (folder / "weights.bin").stat().st_size == 100_000
    single = newest.artifact("again.bin")
    assert single.is_file() and single.read_bytes() == b"w" * 100_000
    with pytest.raises(ArtifactError):
        newest.artifact("missing")


def test_job_gets_a_clear_error_for_a_bad_name(project: Project) -> None:
    project.write("bad.py", """
        import mayuri
        open("f.txt", "w").write("x")
        mayuri.artifact("f.txt", name="../../escape.txt")
    """)
    project.write("exp.yaml", "name: bad\njobs:\n  bad:\n    run: python bad.py\n")
    assert project.mayuri("run", "exp.yaml").returncode == 1
    (run,) = project.runs()
    stderr = (project.root / ".mayuri" / "runs" / run["id"] / "stderr.log").read_text()
    assert "ArtifactError" in stderr and "climbs out of its folder" in stderr
    assert not (project.root / ".mayuri" / "escape.txt").exists()
    assert not (project.root.parent / "escape.txt").exists()


def test_an_artifact_folder_in_the_project_is_an_output_not_an_input(project: Project) -> None:
    project.write("save.py", SAVE + "\nimport glob\nglob.glob('inputs/*')\n")
    (project.root / "inputs").mkdir()
    project.write("exp.yaml", """
        name: art
        jobs:
          save: {run: python save.py first.bin}
    """)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    (run,) = project.runs()
    closure = {entry["path"]: entry["role"] for entry in project.show(run["id"])["closure"]}
    # The folder the job globbed itself is an input; the one mayuri.artifact walked is not.
    assert closure.get("inputs") == "listing"
    assert "model" not in closure and "model/sub" not in closure
    (project.root / "model" / "stray.txt").write_text("written by something else")
    assert "cached" in project.mayuri("run", "exp.yaml").stderr
    (project.root / "inputs" / "new.csv").write_text("1\n")
    assert "inputs/ listing changed" in project.mayuri("run", "exp.yaml").stderr
