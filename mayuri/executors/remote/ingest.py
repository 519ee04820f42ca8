"""The head's side of the spool: a remote job's spooled metrics and artifacts, read into the store.

A job on a node writes its metrics and artifacts to `spool/` in its run
folder (`mayuri.executors.remote.spool`); its executor brings that folder to
the head (or the head sees it on a shared filesystem). `SpoolReader` reads
what is new since its last look: whole metric frames of every
`metrics-<pid>.bin`, whole lines of `artifacts.jsonl`. How far it has read is
kept in `spool/ingested.json` after each commit, so that a head that crashed
and came back (adoption) goes on from there instead of recording points twice.

`Ingester` is the one background thread of a head that reads the spools of
every running remote attempt every half second (metrics queryable within
about a second of their flush), and reads one completely, once more, when its
attempt has ended, before the scheduler records the end.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mayuri.errors import MayuriError
from mayuri.executors.remote.spool import ARTIFACTS_LOG, METRICS_PREFIX, METRICS_SUFFIX
from mayuri.run_contract import log_file, spool_dir
from mayuri.store.db import Store
from mayuri.tracking.sink import decode_frames

STATE_FILE = "ingested.json"
INTERVAL = 0.5


class SpoolReader:
    """What has been read of one run's spool, and the reading of what is new."""

    def __init__(self, store: Store, run_id: str, run_dir: Path) -> None:
        self.store = store
        self.run_id = run_id
        self.run_dir = run_dir
        self.folder = spool_dir(run_dir)
        self.lock = threading.Lock()
        state = self._load()
        self.offsets: dict[str, int] = {str(k): int(v) for k, v in state.get("metrics", {}).items()}
        self.artifacts_offset = int(state.get("artifacts", 0))
        self.points = 0

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.folder / STATE_FILE, encoding="utf-8") as handle:
                loaded = json.load(handle)
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _save(self) -> None:
        tmp = self.folder / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps({"metrics": self.offsets, "artifacts": self.artifacts_offset}), encoding="utf-8")
        os.replace(tmp, self.folder / STATE_FILE)

    def pump(self) -> int:
        """Read every whole record added since the last call into the store; the number of metric points."""
        with self.lock:
            if not self.folder.is_dir():
                return 0
            written = self._metrics()
            self._artifacts()
            return written

    def _metrics(self) -> int:
        written = 0
        for name in sorted(os.listdir(self.folder)):
            if not (name.startswith(METRICS_PREFIX) and name.endswith(METRICS_SUFFIX)):
                continue
            offset = self.offsets.get(name, 0)
            with open(self.folder / name, "rb") as handle:
                handle.seek(offset)
                data = bytearray(handle.read())
            if not data:
                continue
            size = len(data)
            # Only whole frames: the rest (a frame still being written) is read next time.
            points = decode_frames(data)
            if points:
                from mayuri.store.metric_records import append_points

                try:
                    append_points(self.store, self.run_id, points)
                except (MayuriError, OverflowError) as exc:
                    self._complain(f"{len(points)} metric points lost: {exc}")
                written += len(points)
            self.offsets[name] = offset + size - len(data)
            self._save()
        self.points += written
        return written

    def _artifacts(self) -> None:
        path = self.folder / ARTIFACTS_LOG
        try:
            with open(path, "rb") as handle:
                handle.seek(self.artifacts_offset)
                data = handle.read()
        except FileNotFoundError:
            return
        whole = data[:data.rfind(b"\n") + 1]
        for line in whole.splitlines():
            if line.strip():
                self._artifact(json.loads(line))
        if whole:
            self.artifacts_offset += len(whole)
            self._save()

    def _artifact(self, line: dict[str, Any]) -> None:
        from mayuri.store.artifact_records import remove_artifacts
        from mayuri.tracking.artifacts import artifact_entries, store_artifact

        try:
            if "remove" in line:
                remove_artifacts(self.store, self.run_id, list(line["remove"]))
                return
            source = self.folder / str(line["path"])
            if not source.exists():
                return  # stored already, by a head that crashed before noting it
            name = str(line["name"])
            entries, default_kind = artifact_entries(source, name)
            store_artifact(self.store, self.run_id, name, line.get("kind") or default_kind, entries,
                           link=bool(line.get("link")))
            shutil.rmtree(source.parent, ignore_errors=True)
        except MayuriError as exc:
            self._complain(f"artifact {line.get('name')!r} not stored: {exc.message}")

    def _complain(self, text: str) -> None:
        # Where the user looks for what went wrong with the run: its stderr.
        try:
            with open(log_file(self.run_dir, "stderr"), "a", encoding="utf-8") as handle:
                handle.write(f"mayuri: {text}\n")
        except OSError:
            sys.stderr.write(f"mayuri: run {self.run_id[:8]}: {text}\n")


class Ingester:
    """The head's thread that reads the spools of running remote attempts into the store."""

    def __init__(self, store_of: Callable[[], Store], interval: float = INTERVAL) -> None:
        # A function: the thread takes its own connection (a Store's connections are per thread).
        self.store_of = store_of
        self.interval = interval
        self.readers: dict[str, SpoolReader] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, run_id: str, run_dir: Path) -> SpoolReader:
        """Start reading a run's spool in the background."""
        reader = SpoolReader(self.store_of(), run_id, run_dir)
        with self._lock:
            self.readers[run_id] = reader
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="mayuri-ingest", daemon=True)
                self._thread.start()
        return reader

    def finish(self, run_id: str, run_dir: Path) -> int:
        """Read a run's spool to its end (its job has ended and its files are here); stop watching it."""
        with self._lock:
            reader = self.readers.pop(run_id, None)
        if reader is None:
            reader = SpoolReader(self.store_of(), run_id, run_dir)
        reader.pump()
        return reader.points

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                readers = list(self.readers.values())
            for reader in readers:
                try:
                    reader.pump()
                except (OSError, ValueError, MayuriError) as exc:
                    reader._complain(f"reading the spool failed: {exc}")

    def close(self) -> None:
        """Stop the thread (what has not been read stays in the spools, for `finish` or a later head)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
