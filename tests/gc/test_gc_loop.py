"""gc in a loop while real `mayuri run` jobs save artifacts; and freed bytes that match the filesystem.

Scaled down to seconds: five rounds of three jobs (each saves a fresh
checkpoint and a file whose content every job shares, so deduplicated writes
race with the sweep too) while `mayuri gc --older-than 0s --keep-last 1
--grace 2s --yes` runs back to back. No registered blob may go missing and no
kept run's reference may dangle. One job in three fails, and the
rounds pause a little, so that gc collects while jobs write.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from typing import Any

import pytest

from mayuri.hashing import hash_file
from tests.gc.gc_helpers import Filler, dangling_references, disk_usage
from tests.store.store_workers import integrity

JOB = """
import os, sys
import mayuri
run_dir = os.environ["MAYURI_RUN_DIR"]
checkpoint = os.path.join(run_dir, "ckpt.bin")
with open(checkpoint, "wb") as handle:
    handle.write(os.urandom(int(sys.argv[1])))
mayuri.artifact(checkpoint, "ckpt")
shared = os.path.join(run_dir, "vocab.txt")
with open(shared, "w") as handle:
    handle.write("the same vocabulary in every run\\n")
mayuri.artifact(shared, "vocab")
mayuri.output("checkpoint", checkpoint)
# Some runs fail after saving their artifacts: gc may take those even while
# `mayuri run` is still going (it keeps the reusable ones until it ends).
sys.exit(1 if sys.argv[2] == "2" else 0)
"""

EXPERIMENT = """
name: loop
params: {size: 200000, round: 0, i: 0}
jobs:
  train:
    # `round` is in the command so that each round reruns (an unused param would leave it cached).
    run: python src/job.py ${size} ${i} ${round}
"""


def missing_registered_blobs(filler: Filler) -> list[str]:
    rows = filler.store.db.execute_sql("SELECT sha512 FROM blob").fetchall()
    return [sha for (sha,) in rows if not (filler.store.blobs / sha[:2] / sha[2:]).is_file()]


@pytest.mark.slow
def test_gc_loop_while_jobs_write_artifacts(project: Any, filler: Filler) -> None:
    project.write("src/job.py", JOB)
    project.write("exp.yaml", EXPERIMENT)
    stop = threading.Event()
    sweeps: list[dict[str, Any]] = []
    problems: list[str] = []

    def gc_loop() -> None:
        while not stop.is_set():
            done = project.mayuri(
                "gc", "--older-than", "0s", "--keep-last", "1", "--grace", "2s", "--yes", "--json"
            )
            if done.returncode != 0:
                problems.append(done.stderr)
            else:
                sweeps.append(json.loads(done.stdout))

    thread = threading.Thread(target=gc_loop)
    thread.start()
    try:
        for round_ in range(5):
            done = project.mayuri("run", "exp.yaml", f"round={round_}", "i=1,2,3")
            assert done.returncode == 1 and "2 succeeded" in done.stderr, done.stderr
            assert missing_registered_blobs(filler) == []
            time.sleep(random.uniform(0.1, 0.4))
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not problems, problems
    collected = sum(len(s["plan"]["runs"]) for s in sweeps if s["result"])
    assert len(sweeps) >= 3 and collected >= 3, "gc never overlapped the jobs; nothing was tested"
    assert missing_registered_blobs(filler) == []
    assert dangling_references(filler.store) == []
    assert integrity(filler.store.db_path) == "ok"


def test_bytes_reported_freed_match_the_filesystem(project: Any, filler: Filler) -> None:
    code = [filler.code(f"x = {i}\n" * 5000) for i in range(3)]
    for i in range(8):
        run = filler.run(age_days=40 - i, size=150_000 + 7_919 * i, code=[code[i % 3]])
        nested = filler.store.runs / run / "checkpoints" / "step-1"
        nested.mkdir(parents=True)
        (nested / "weights.bin").write_bytes(os.urandom(30_000 + i))
    # A put-back artifact is a hard link to its blob: deleting it frees nothing by itself. Run 0
    # goes but code[0] stays (run 6 is kept); run 2 goes and so does code[2] (only runs 2 and 5 used it).
    for run_index, blob in ((0, code[0].sha512), (2, code[2].sha512)):
        os.link(
            filler.store.blobs / blob[:2] / blob[2:],
            filler.store.runs / filler.ids[run_index] / "linked.py",
        )
    filler.age_blobs(7200)
    before = disk_usage(filler.store.runs, filler.store.blobs)
    done = project.mayuri("gc", "--keep-last", "2", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    reported = json.loads(done.stdout)
    after = disk_usage(filler.store.runs, filler.store.blobs)
    freed = reported["result"]["bytes"]
    assert len(reported["result"]["categories"]) >= 2 and freed > 1_000_000
    assert abs(freed - (before - after)) <= 0.01 * (before - after), (freed, before - after)
    # The plan's estimate is the same figure when nothing changed in between.
    assert abs(reported["plan"]["bytes"] - freed) <= 0.01 * freed
    for run_id in filler.ids[-2:]:
        assert hash_file(filler.store.runs / run_id / "out.bin")[1] > 0
