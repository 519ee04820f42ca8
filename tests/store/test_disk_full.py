"""A disk that fills while a blob is written fails that run clearly; the other jobs go on."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.store.unix_users import need_root_tools, unmount

EXP = """
name: full
jobs:
  big:
    run: python big.py
  small:
    run: python small.py
    outputs: [ok]
"""
# The small job's records are written before the disk fills: a store write that meets the full disk
# ends the whole run with exit 2 (the store's own failure), which is not what this test is about.
BIG = """
import os, pathlib, time
import mayuri
while not pathlib.Path("small-done").exists():
    time.sleep(0.05)
time.sleep(1.0)  # its end recorded by the scheduler meanwhile
os.chdir(os.environ["MAYURI_RUN_DIR"])  # the 12 MB file in the run folder, on the same small disk
open("big.bin", "wb").write(b"x" * 12_000_000)
mayuri.artifact("big.bin")
"""
SMALL = """
import pathlib
import mayuri
mayuri.output("ok", 1)
pathlib.Path("small-done").write_text("done")
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: room for the database and the job's file, not for its copy as a blob."""
    need_root_tools("mount", "umount")
    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (no CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        unmount(folder)


def test_blob_write_on_a_full_disk_fails_only_its_run(tmp_path: Path, small_disk: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    project = Project(root)
    (root / "mayuri.toml").write_text(f'[store]\npath = "{small_disk / "store"}"\n')
    assert project.mayuri("init").returncode == 0
    project.write("exp.yaml", EXP)
    project.write("big.py", BIG)
    project.write("small.py", SMALL)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    runs = {r["job"]: r for r in project.runs()}
    assert runs["small"]["status"] == "succeeded"
    big = project.show(runs["big"]["id"])
    assert big["status"] == "failed"
    assert big["attempts"][-1]["cause"] == "disk_full"
    assert "no space left on the device holding the store" in str(big.get("error")), big.get("error")
    stderr = (small_disk / "store" / "runs" / runs["big"]["id"] / "stderr.log").read_text()
    assert "no space left on the device holding the store" in stderr
    assert not any((small_disk / "store" / "blobs" / "tmp").iterdir()), "the partial blob must be removed"
    assert project.mayuri("doctor").returncode == 0
