"""Reading a run's log files, once or following them while the run goes on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from mayuri.run_contract import log_file
from mayuri.store import Store
from mayuri.store.queries import get_run

ACTIVE = ("queued", "running")


def follow_run_logs(
    store: Store, ref: str, *, follow: bool = False, with_stderr: bool = True, poll: float = 0.2
) -> Iterator[tuple[bytes, str]]:
    """Chunks of (bytes, 'stdout' | 'stderr') of a run's output; with follow, until the run ends."""
    run = get_run(store, ref)
    folder = Path(run.run_dir)
    streams = ["stdout", "stderr"] if with_stderr else ["stdout"]
    if not follow:
        for stream in streams:
            path = log_file(folder, stream)
            if path.exists():
                with open(path, "rb") as handle:
                    while chunk := handle.read(1 << 16):
                        yield chunk, stream
        return
    offsets = dict.fromkeys(streams, 0)
    while True:
        # Read the status before the files, so that output written just before
        # the run ended is still printed on this last pass.
        active = get_run(store, run.id).status in ACTIVE
        for stream in streams:
            path = log_file(folder, stream)
            if not path.exists():
                continue
            with open(path, "rb") as handle:
                handle.seek(offsets[stream])
                while chunk := handle.read(1 << 16):
                    offsets[stream] += len(chunk)
                    yield chunk, stream
        if not active:
            return
        time.sleep(poll)
