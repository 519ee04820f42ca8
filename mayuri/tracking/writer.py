"""The job's metric buffer and the thread that hands its points to the writer process.

Why a separate writer process (`mayuri.tracking.sink`) and not a thread that
writes SQLite itself: Python's sqlite3 releases and retakes the GIL for every
row of an `executemany`, so a writer thread inside a busy training loop was
measured six times slower than alone, and it slowed the loop down too. Here
the job only appends tuples to a list (the hot path); a daemon thread wakes
every `interval` seconds, encodes what has piled up with `marshal` (one C call)
and writes it to the sink's stdin. The sink, with its own GIL, writes the
points to the store in one BEGIN IMMEDIATE transaction per batch.

Durability: points reach the sink at most `interval` seconds after they were
logged; the sink lives in its own session, so a SIGKILL of the job (or of its
process group) leaves it running to drain the pipe and commit. At a normal
exit an atexit handler sends the rest and waits until the sink has committed,
so the scheduler sees every point once the job's process is gone.

On a remote node (MAYURI_SPOOL set) there is no sink: the thread appends
the same frames to the run's spool file (`mayuri.executors.remote.spool`),
which the head ingests; the hot path is the same.

Must not: take a lock or format anything per point, raise into the job from
the background thread, or carry a buffer or a sink across `fork()`.
"""

from __future__ import annotations

import marshal
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Protocol

FLUSH_INTERVAL = 0.5
_FRAME = struct.Struct("<Q")
# Fewer points per frame keeps each GIL-holding marshal call short.
_FRAME_POINTS = 50_000


def encode_frame(points: list[tuple[str, int, float, float]]) -> bytes:
    """One frame of the sink's format (`sink.decode_frames` reads it): an 8-byte length, the marshalled points."""
    payload = marshal.dumps(points)
    return _FRAME.pack(len(payload)) + payload


class _Target(Protocol):
    """Where the frames go: the sink process's stdin, or the spool file."""

    def write(self, data: bytes) -> object: ...

    def flush(self) -> None: ...

    def finish(self, timeout: float) -> None: ...


class _SinkProcess:
    """The sink process (`mayuri.tracking.sink`) fed through its stdin."""

    def __init__(self, store: Path, run_id: str) -> None:
        env = dict(os.environ)
        # The sink is Mayuri's own machinery, not part of the job's closure.
        env.pop("MAYURI_CLOSURE_DIR", None)
        # Marked, so that the job's supervisor lets it commit and exit by itself rather than stop it
        # as a leftover (it ends when the job's end closes its stdin).
        env["MAYURI_SINK"] = "1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mayuri.tracking.sink", str(store), run_id],
            stdin=subprocess.PIPE,
            # Its errors belong in the job's stderr; nothing else of it is wanted.
            stdout=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        assert self.process.stdin is not None
        self.stream = self.process.stdin

    def write(self, data: bytes) -> object:
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()

    def finish(self, timeout: float) -> None:
        self.stream.close()
        self.process.wait(timeout)


class MetricBuffer:
    """Points logged by this process for one run, on their way to the sink."""

    def __init__(self, run_id: str, store: Path, interval: float = FLUSH_INTERVAL) -> None:
        self.run_id = run_id
        self.store = store
        self.interval = interval
        self.pending: list[tuple[str, int, float, float]] = []
        # Bound once: the hot path calls it without an attribute lookup on the list.
        self.append = self.pending.append
        self.next_step = 0
        self._sink: _Target | None = None
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._broken = False
        self._thread = threading.Thread(target=self._loop, name="mayuri-metrics", daemon=True)
        self._thread.start()

    def _take(self) -> list[tuple[str, int, float, float]]:
        # Appends only ever add at the end, so the first `count` items are
        # stable; `del` of a slice is one atomic step under the GIL.
        count = len(self.pending)
        batch = self.pending[:count]
        del self.pending[:count]
        return batch

    def _start_sink(self) -> _Target:
        from mayuri.executors.remote.spool import MetricSpool, spooling

        return MetricSpool() if spooling() else _SinkProcess(self.store, self.run_id)

    def flush(self) -> None:
        """Hand every pending point to the sink now (it commits them shortly after)."""
        with self._send_lock:
            batch = self._take()
            if not batch or self._broken:
                return
            try:
                if self._sink is None:
                    self._sink = self._start_sink()
                stream = self._sink
                for start in range(0, len(batch), _FRAME_POINTS):
                    stream.write(encode_frame(batch[start:start + _FRAME_POINTS]))
                stream.flush()
            except (OSError, ValueError) as exc:
                # The job must go on training: say so once, then drop points.
                self._broken = True
                sys.stderr.write(f"mayuri: metrics writer stopped, points are no longer recorded ({exc}).\n")

    def _loop(self) -> None:
        # Start the sink at once, so that its start-up overlaps the first interval.
        with self._send_lock:
            try:
                self._sink = self._start_sink()
            except OSError as exc:
                self._broken = True
                sys.stderr.write(f"mayuri: cannot start the metrics writer, points are not recorded ({exc}).\n")
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self, timeout: float = 120.0) -> None:
        """Send the rest, and wait until the sink has committed everything."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self.flush()
        with self._send_lock:
            sink, self._sink = self._sink, None
            if sink is None:
                return
            try:
                sink.finish(timeout)
            except (OSError, subprocess.TimeoutExpired) as exc:
                sys.stderr.write(f"mayuri: the metrics writer did not finish ({exc}).\n")
