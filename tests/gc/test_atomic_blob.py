"""RELIABILITY.md test 21: SIGKILL during blob writes; gc removes the leftover temp files after the grace period.

Scaled down from 200 kills during 100 MB writes to 12 kills during 16 MB
writes (the writer copies in a loop, so every kill lands in the middle of a
copy, an fsync or a rename), which keeps the test to seconds on two cores.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mayuri.gc.safe_fs import temp_files
from mayuri.hashing import hash_file
from tests.gc.gc_helpers import Filler
from tests.store.store_workers import integrity

WRITE_LOOP = """
import sys
from pathlib import Path
from mayuri.store import open_store
from mayuri.store.blobs import write_blobs
store = open_store(Path(sys.argv[1]))
sources = [Path(p) for p in sys.argv[2:]]
print("ready", flush=True)
while True:
    for source in sources:
        write_blobs(store, [(source, None)])
"""


@pytest.mark.slow
def test_killed_blob_writes_leave_no_bad_blob_and_gc_clears_temp_files(
    project: Any, filler: Filler
) -> None:
    sources = []
    for index in range(3):
        path = project.root / f"big{index}.bin"
        path.write_bytes(os.urandom(16 << 20))
        sources.append(str(path))
    for _ in range(12):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITE_LOOP, str(filler.store.root), *sources],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(random.uniform(0.05, 0.3))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    for sha, path in _final_blobs(filler.store.blobs):
        assert hash_file(path)[0] == sha, f"{path} does not hold the content its name says"
    leftovers = list(temp_files(filler.store.root))
    assert leftovers, "no kill landed in the middle of a copy; the test did not test anything"
    # Younger than the grace period: a writer may still be filling them.
    done = project.mayuri("gc", "--grace", "1h", "--yes", "--json")
    assert done.returncode == 0 and len(list(temp_files(filler.store.root))) == len(leftovers)
    old = time.time() - 7200
    for name, _size, _mtime in leftovers:
        os.utime(filler.store.blobs / "tmp" / name, (old, old))
    done = project.mayuri("gc", "--grace", "1h", "--yes", "--json")
    result = json.loads(done.stdout)["result"]
    freed = {c["name"]: c for c in result["categories"]}["temp files"]
    assert freed["items"] == len(leftovers) and freed["bytes"] == sum(s for _, s, _ in leftovers)
    assert list(temp_files(filler.store.root)) == []
    assert integrity(filler.store.db_path) == "ok"


def _final_blobs(blobs: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for fan in blobs.iterdir():
        if len(fan.name) == 2 and fan.is_dir():
            found.extend((fan.name + p.name, p) for p in fan.iterdir())
    return found
