"""RELIABILITY.md test 20: gc against a blob writer, with its sensitivity check; and the grace period.

Scaled down from the plan's 10 minutes to about five seconds a case: the
writer waits 0-0.75 s (not 0-3 s) between writing a blob and referencing it,
and `mayuri gc` runs back to back through the real CLI meanwhile (each call
is a new process, a few tenths of a second apart on two cores). With a grace
period longer than the delay (2 s against 0.75 s: still more than twice the
longest delay, as the plan's), or with a pending reference (a hold) and no grace, no
reference may dangle; with neither, a blob MUST be lost, which proves that
the test can see the race it guards against.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from mayuri.store.blobs import write_blobs
from tests.gc.gc_helpers import Filler, dangling_references
from tests.store.store_workers import integrity

WRITER = Path(__file__).with_name("race_writer.py")
MAX_DELAY = 0.75  # seconds between writing a blob and referencing it, at most


def race(
    project: Any, filler: Filler, grace: str, hold: bool, seconds: float, stop_on_loss: bool = False
) -> tuple[dict[str, int], int]:
    """Run the writer while gc loops; (writer summary, number of gc sweeps)."""
    args = [
        sys.executable,
        str(WRITER),
        str(filler.store.root),
        str(project.root),
        str(seconds),
        str(MAX_DELAY),
        "hold" if hold else "nohold",
    ] + (["stop-on-loss"] if stop_on_loss else [])
    writer = subprocess.Popen(args, cwd=project.root, stdout=subprocess.PIPE, text=True)
    sweeps = 0
    failures: list[str] = []

    def loop() -> None:
        nonlocal sweeps
        while writer.poll() is None:
            done = project.mayuri("gc", "--grace", grace, "--yes", "--json")
            if done.returncode != 0:
                failures.append(done.stderr)
            sweeps += 1

    thread = threading.Thread(target=loop)
    thread.start()
    out, _ = writer.communicate(timeout=seconds + 120)
    thread.join(timeout=120)
    assert writer.returncode == 0 and not failures, failures
    return json.loads(out), sweeps


@pytest.mark.slow
def test_grace_period_protects_blobs_not_yet_referenced(project: Any, filler: Filler) -> None:
    summary, sweeps = race(project, filler, "2s", hold=False, seconds=5)
    assert summary["written"] >= 5 and sweeps >= 3
    assert summary["lost"] == 0
    assert dangling_references(filler.store) == []
    assert integrity(filler.store.db_path) == "ok"


@pytest.mark.slow
def test_a_hold_protects_without_any_grace(project: Any, filler: Filler) -> None:
    summary, sweeps = race(project, filler, "0s", hold=True, seconds=4)
    assert summary["written"] >= 4 and sweeps >= 3
    assert summary["lost"] == 0
    assert dangling_references(filler.store) == []


@pytest.mark.slow
def test_sensitivity_without_grace_or_hold_a_blob_is_lost(project: Any, filler: Filler) -> None:
    summary, _ = race(project, filler, "0s", hold=False, seconds=40, stop_on_loss=True)
    assert summary["lost"] >= 1, "gc with no grace and no hold should have taken a blob in flight"
    assert dangling_references(filler.store) != []


def test_unreferenced_blob_is_kept_for_the_grace_period_then_swept(
    project: Any, filler: Filler
) -> None:
    source = project.write("loose.bin", "not referenced by anything\n")
    [(sha, _)] = write_blobs(filler.store, [(source, None)])
    done = project.mayuri("gc", "--grace", "1h", "--dry-run", "--json")
    assert done.returncode == 0, "a blob written just now is not garbage yet"
    filler.age_blobs(2 * 3600)
    space = os.lstat(filler.store.blobs / sha[:2] / sha[2:]).st_blocks * 512
    done = project.mayuri("gc", "--grace", "1h", "--yes", "--json")
    result = json.loads(done.stdout)["result"]
    assert {"name": "blobs", "items": 1, "bytes": space} in result["categories"]
    assert not (filler.store.blobs / sha[:2] / sha[2:]).exists()
    assert filler.store.db.execute_sql("SELECT count(*) FROM blob").fetchone()[0] == 0


def test_reusing_an_old_blob_refreshes_it(project: Any, filler: Filler) -> None:
    """A deduplicated write (the blob exists, so nothing is copied) must restart the grace period."""
    source = project.write("again.bin", "same bytes twice\n")
    [(sha, _)] = write_blobs(filler.store, [(source, None)])
    filler.age_blobs(2 * 3600)
    write_blobs(filler.store, [(source, sha)])
    done = project.mayuri("gc", "--grace", "1h", "--dry-run", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["plan"]["blobs"] == []


def test_a_deduplicated_write_racing_a_sweep_keeps_its_blob(project: Any, filler: Filler) -> None:
    from mayuri.gc import Policy, collect_garbage
    from mayuri.store.blobs import blob_path

    source = project.write("dedup.bin", "content a collected run left behind\n")
    [(sha, _)] = write_blobs(filler.store, [(source, None)])
    filler.age_blobs(2 * 3600)
    store = filler.store
    register = store.write

    def sweep_then_register() -> Any:
        # Runs after write_blobs found the blob present, before it registers it.
        store.write = register  # type: ignore[method-assign]
        collect_garbage(store, Policy(grace=3600), lambda plan: True)
        return register()

    store.write = sweep_then_register  # type: ignore[method-assign]
    write_blobs(store, [(source, sha)])
    assert blob_path(store, sha).is_file()
