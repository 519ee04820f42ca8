"""A blob writer for the gc race tests (RELIABILITY.md test 20), run as its own process.

Loop: a queued run; a new code file; (optionally) hold its digest; write the
blob with `write_blobs`; wait a random 0..max_delay seconds, as a job does
between writing a blob and recording the run; record the run with the blob in
its closure; release the hold. After each reference it checks that the blob
is still there and counts it lost when it is not. Prints a JSON summary.

Usage: race_writer.py STORE PROJECT SECONDS MAX_DELAY hold|nohold [stop-on-loss]
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

from mayuri.store import open_store
from mayuri.store.blobs import blob_path, write_blobs
from mayuri.store.gc_records import hold_blobs, release_blobs
from mayuri.store.records import ClosureRow, create_run, ensure_experiment, finish_run, new_run_id


def main(argv: list[str]) -> int:
    store = open_store(Path(argv[1]))
    project, seconds, max_delay = Path(argv[2]), float(argv[3]), float(argv[4])
    hold, stop_on_loss = argv[5] == "hold", "stop-on-loss" in argv[6:]
    experiment = ensure_experiment(store, "race")
    written = lost = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (stop_on_loss and lost):
        run_id = new_run_id()
        source = project / "src" / f"w{os.getpid()}_{written}.py"
        source.parent.mkdir(exist_ok=True)
        source.write_bytes(os.urandom(2048))
        sha = hashlib.sha512(source.read_bytes()).hexdigest()
        create_run(
            store,
            run_id=run_id,
            experiment_id=experiment,
            job="w",
            kind="job",
            config_hash="w",
            params={"i": written},
            config={},
            upstream={},
            reason="new",
            run_dir=store.runs / run_id,
        )
        if hold:
            hold_blobs(store, [sha], run_id)
        [(digest, size)] = write_blobs(store, [(source, None)])
        time.sleep(random.uniform(0, max_delay))
        finish_run(
            store,
            run_id,
            status="succeeded",
            exit_code=0,
            fingerprint=sha,
            closure=[
                ClosureRow("code", source.relative_to(project).as_posix(), "file", digest, size)
            ],
        )
        if hold:
            release_blobs(store, [sha], run_id)
        written += 1
        if not blob_path(store, digest).is_file():
            lost += 1
    print(json.dumps({"written": written, "lost": lost}))
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
