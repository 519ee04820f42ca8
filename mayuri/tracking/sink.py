"""The metrics writer process of one job: reads framed point batches on stdin, commits them.

Started by the job's `MetricBuffer` (see `writer.py` for why a process) as
`python -m mayuri.tracking.sink STORE RUN_ID`. Each frame is an 8-byte
little-endian length and a `marshal`led list of (key, step, value, logged_at).
Whatever has arrived is committed in one transaction, so a busy job gets
large batches and a quiet one gets its points within milliseconds. It exits
when stdin closes (the job ended, normally or not), after committing.

It starts with every job that logs, so it opens the database with the
standard library alone (`store.plain_sqlite`): its scheduler has opened,
checked and upgraded the store already.

Must not: exit before everything read is committed, or be stopped by the
signals meant for the job (it runs in its own session and ignores SIGINT).
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import sqlite3
import struct
import sys
from pathlib import Path

from mayuri.errors import MayuriError, StoreError
from mayuri.store.metric_records import Point, write_points
from mayuri.store.plain_sqlite import DB_NAME, connect, write_transaction

_FRAME = struct.Struct("<Q")
_READ = 1 << 20
# Commit at least every this many bytes (about 400,000 points) while frames keep arriving.
_MAX_BYTES = 8 << 20


def decode_frames(buffer: bytearray) -> list[Point]:
    """Decode and remove every whole frame at the start of `buffer`."""
    points: list[Point] = []
    offset = 0
    while len(buffer) - offset >= _FRAME.size:
        (size,) = _FRAME.unpack_from(buffer, offset)
        if len(buffer) - offset - _FRAME.size < size:
            break
        start = offset + _FRAME.size
        points.extend(marshal.loads(bytes(buffer[start:start + size])))
        offset = start + size
    del buffer[:offset]
    return points


def pump(conn: sqlite3.Connection, db_path: Path, run_id: str, fd: int) -> int:
    """Commit every frame read from `fd` until it closes; returns the number of points written."""
    written = 0
    buffer = bytearray()
    ended = False
    while not ended:
        chunk = os.read(fd, _READ)
        ended = not chunk
        buffer += chunk
        # Take whatever else is already waiting, so that one commit covers it.
        while not ended and len(buffer) < _MAX_BYTES and select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, _READ)
            ended = not chunk
            buffer += chunk
        points = decode_frames(buffer)
        if not points:
            continue
        try:
            with write_transaction(conn, db_path):
                write_points(conn, db_path, run_id, points)
            written += len(points)
        except (StoreError, OverflowError) as exc:
            # Keep draining: later batches may succeed once a lock is released
            # (an int too big for SQLite spoils only its own batch).
            sys.stderr.write(f"mayuri: {len(points)} metric points of run {run_id} lost: {exc}\n")
    return written


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    store_root, run_id = Path(argv[0]), argv[1]
    try:
        # The scheduler has already accepted this store (network filesystem or not).
        conn = connect(store_root / DB_NAME)
        # write_points checks the run once per batch; the per-row foreign key
        # lookup would cost a tenth of the insert rate. (This connection only.)
        conn.execute("PRAGMA foreign_keys = OFF")
        pump(conn, store_root / DB_NAME, run_id, sys.stdin.fileno())
    except MayuriError as exc:
        sys.stderr.write(f"mayuri: metrics of run {run_id} not recorded: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
