"""`mayuri doctor`: check the store and repair what is safe to repair.

Checks SQLite's integrity and foreign keys, settles the runs of schedulers
that died (jobs still running are adopted: doctor waits for them, telling
`progress` which, and records how they ended; Ctrl-C, or `wait=False`, leaves
them running; ended ones recorded from their supervisor's record; the rest
orphaned), frees the GPU leases of the jobs that ended, drops stray
leases, warns about a large `-wal` file (a reader that never ends keeps it
from being checkpointed) and about database files the group cannot write in
a group-shared store. It never deletes runs or blobs and prints only through `progress`.

Before the store is opened the usual way (which writes), `examine` looks at
the database file read-only: a lost or empty database over a full store
(`--rebuild` re-indexes it, see store/rebuild.py), a deleted -wal, and
SQLite's quick_check and integrity_check; a damaged database gets a
recovered copy beside it and is replaced only with --yes.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mayuri.config import Settings
from mayuri.scheduler.adoption import adopt_all
from mayuri.scheduler.recovery import Recovery, recover
from mayuri.store.db import DB_NAME, Store, database_empty, open_store, store_content
from mayuri.store.db_file import integrity, replace_with, wal_trouble, write_recovered_copy
from mayuri.store.perms import share_like_folder
from mayuri.units import format_size

WAL_WARN_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class Finding:
    """One thing doctor looked at: ok, repaired, warning or problem."""

    check: str
    level: str
    message: str


@dataclass
class DoctorReport:
    """Every finding of one `mayuri doctor` run."""

    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, level: str, message: str) -> None:
        self.findings.append(Finding(check, level, message))

    @property
    def ok(self) -> bool:
        return not any(f.level == "problem" for f in self.findings)


def _integrity(store: Store, report: DoctorReport) -> None:
    rows = [r[0] for r in store.db.execute_sql("PRAGMA integrity_check").fetchall()]
    if rows == ["ok"]:
        report.add("integrity", "ok", "PRAGMA integrity_check: ok")
    else:
        report.add("integrity", "problem", "PRAGMA integrity_check: " + "; ".join(rows[:5]) +
                   " — restore the store from a backup, or copy it with `sqlite3 mayuri.db .recover`.")
    broken = store.db.execute_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        report.add("foreign keys", "problem", f"{len(broken)} rows point at missing rows (first: table {broken[0][0]})")
    else:
        report.add("foreign keys", "ok", "every reference resolves")


def _adopt(store: Store, found: Recovery, progress: Callable[[str], None], report: DoctorReport) -> Recovery:
    """Wait for the live jobs of dead schedulers, record them, then recover again (their leases go)."""
    try:
        ended = adopt_all(store, found.adoptable, progress)
    except KeyboardInterrupt:
        report.add("adoptable jobs", "warning", "interrupted: the jobs still running were left running (the next "
                   "`mayuri run` or `mayuri doctor` records them when they end)")
        ended = Recovery()
    again = recover(store)
    again.settled[:0] = found.settled + ended.settled
    again.orphaned[:0] = found.orphaned + ended.orphaned
    again.schedulers[:0] = found.schedulers
    again.killed[:0] = found.killed
    again.stray_leases += found.stray_leases
    if ended.settled or ended.orphaned:
        report.add("adopted jobs", "repaired",
                   f"waited for {len(ended.settled) + len(ended.orphaned)} job(s) of a dead scheduler and recorded "
                   "them: " + ", ".join(r[:8] for r in (ended.settled + ended.orphaned)[:10]))
    return again


def _recovery(store: Store, report: DoctorReport, progress: Callable[[str], None] | None) -> None:
    found = recover(store)
    if found.adoptable and progress is not None:
        found = _adopt(store, found, progress, report)
    if found.schedulers:
        report.add("schedulers", "repaired",
                   f"{len(found.schedulers)} dead scheduler(s) reclaimed; {len(found.killed)} leftover process(es) "
                   "stopped")
    else:
        report.add("schedulers", "ok", "no dead scheduler holds anything")
    if found.adoptable:
        report.add("adoptable jobs", "warning",
                   f"{len(found.adoptable)} job(s) still running after their scheduler died (left running, their GPUs "
                   "kept; the next `mayuri run` or `mayuri doctor` records them when they end): "
                   + ", ".join(r.run_id[:8] for r in found.adoptable[:10]))
    if found.settled:
        report.add("ended jobs", "repaired",
                   f"{len(found.settled)} run(s) of a dead scheduler recorded from their supervisor's record: "
                   + ", ".join(r[:8] for r in found.settled[:10]))
    if found.orphaned:
        report.add("orphaned runs", "repaired",
                   f"{len(found.orphaned)} run(s) marked orphaned: " + ", ".join(r[:8] for r in found.orphaned[:10]))
    else:
        report.add("orphaned runs", "ok", "no run is stuck as running")
    if found.stray_leases:
        report.add("leases", "repaired", f"{found.stray_leases} leftover GPU lease(s) freed")
    else:
        report.add("leases", "ok", "no leftover GPU lease")


def _wal(store: Store, report: DoctorReport) -> None:
    wal = store.db_path.with_name(store.db_path.name + "-wal")
    size = wal.stat().st_size if wal.exists() else 0
    if size <= WAL_WARN_BYTES:
        report.add("wal", "ok", f"-wal file {format_size(size)}")
        return
    store.db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")
    after = wal.stat().st_size if wal.exists() else 0
    report.add("wal", "warning",
               f"-wal file is {format_size(after)} (over {format_size(WAL_WARN_BYTES)}): a long-lived reader "
               "(a notebook, a dashboard) keeps SQLite from checkpointing it; close it and the file shrinks.")


def _permissions(store: Store, report: DoctorReport) -> None:
    folder_mode = store.root.stat().st_mode
    if not folder_mode & stat.S_IWGRP:
        report.add("permissions", "ok", "store is private to its owner (not group-shared)")
        return
    bad = []
    for suffix in ("", "-wal", "-shm"):
        path = store.db_path.with_name(store.db_path.name + suffix)
        if not path.exists():
            continue
        mode = path.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IWGRP) != (stat.S_IRGRP | stat.S_IWGRP):
            if path.stat().st_uid == os.getuid():
                share_like_folder(path, store.root)
            repaired = bool(path.stat().st_mode & stat.S_IWGRP)
            bad.append((path.name, oct(stat.S_IMODE(mode)), repaired))
    if not bad:
        report.add("permissions", "ok", "database files are group read/write like the store folder")
    for name, was, fixed in bad:
        if fixed:
            report.add("permissions", "repaired", f"{name} was {was}; made group read/write")
        else:
            report.add("permissions", "problem",
                       f"{name} is {was} in a group-shared store: teammates cannot write it — its owner "
                       f"should run `chmod g+rw {name}`.")


def doctor(store: Store, report: DoctorReport | None = None,
           progress: Callable[[str], None] | None = None) -> DoctorReport:
    """Check the store and repair what is safe (only look, in a read-only store).

    With `progress`, live jobs of dead schedulers are waited for and recorded; without, listed.
    """
    report = report or DoctorReport()
    _integrity(store, report)
    if store.read_only:
        report.add("read-only", "warning", "the store is read-only for you: checked, nothing repaired")
        return report
    _recovery(store, report, progress)
    _wal(store, report)
    _permissions(store, report)
    return report


def _rebuild(settings: Settings, yes: bool, report: DoctorReport) -> None:
    from mayuri.store.rebuild import rebuild_store

    done = rebuild_store(settings.store.path, allow_network_fs=settings.store.allow_network_fs,
                         busy_timeout=settings.store.busy_timeout, yes=yes)
    if done.kept_aside is not None:
        report.add("rebuild", "repaired", f"the old database is kept as {done.kept_aside.name}")
    report.add("rebuild", "repaired", f"re-indexed {done.whole} run(s) from their run.json and "
               f"{done.blobs} blob(s); metric points are not kept in run folders (their summaries are)")
    if done.partial:
        report.add("rebuild", "warning",
                   f"{len(done.partial)} run folder(s) had no run.json: recorded as orphaned runs of experiment "
                   "'(rebuilt)' with their params and outputs only: " + ", ".join(r[:8] for r in done.partial[:10]))


def _wal_lost(db_path: Path, report: DoctorReport) -> bool:
    trouble = wal_trouble(db_path)
    if trouble is None:
        return False
    where = ", ".join(f"pid {pid}" for pid, _ in trouble.holders)
    if trouble.holders:
        pid, fd = trouble.holders[0]
        report.add("wal", "problem",
                   f"{db_path.name}-wal was deleted while {where} still use it: committed changes live only in "
                   f"that deleted file and are lost when they exit. Before they do: stop new writers, then "
                   f"`cp /proc/{pid}/fd/{fd} {db_path}-wal`. The store was not opened.")
    else:
        report.add("wal", "problem",
                   f"{db_path.name}-wal is missing or shorter than its index says ({trouble.frames} committed "
                   f"frames): it was deleted or truncated while the store was in use, and those changes are "
                   "lost. Restore mayuri.db* from a backup, or accept the loss by removing "
                   f"{db_path.name}-shm. The store was not opened.")
    return True


def _damaged(db_path: Path, yes: bool, report: DoctorReport) -> bool:
    quick, full = integrity(db_path)
    if quick == ["ok"] and full == ["ok"]:
        return False
    # With --yes the damaged file is replaced below: what it said is then history, not a problem left.
    level = "repaired" if yes else "problem"
    report.add("integrity", level, "PRAGMA quick_check: " + "; ".join(quick[:5]))
    report.add("integrity", level, "PRAGMA integrity_check: " + "; ".join(full[:5]))
    try:
        copy, how = write_recovered_copy(db_path)
    except OSError as exc:
        report.add("recovery", "problem", f"could not write a recovered copy beside it ({exc.strerror})")
        return True
    share_like_folder(copy, db_path.parent)
    if not yes:
        report.add("recovery", "warning",
                   f"wrote a recovered copy as {copy.name} ({how}); the original is untouched. Check it "
                   f"(`mayuri doctor` on a copy), then `mayuri doctor --yes` puts it in place.")
        return True
    if integrity(copy) != (["ok"], ["ok"]):
        report.add("recovery", "problem", f"the recovered copy {copy.name} is damaged too; the original is untouched")
        return True
    kept = replace_with(db_path, copy, time.strftime("%Y%m%d-%H%M%S"))
    report.add("recovery", "repaired", f"replaced the database with a recovered copy ({how}); "
               f"the damaged one is kept as {kept.name}")
    return False


def examine(settings: Settings, *, rebuild: bool = False, yes: bool = False,
            progress: Callable[[str], None] | None = None) -> DoctorReport:
    """`mayuri doctor`: the database file first (read-only), then the store itself."""
    report = DoctorReport()
    root = settings.store.path
    db_path = root / DB_NAME
    if rebuild:
        _rebuild(settings, yes, report)
    elif database_empty(db_path):
        folders, blobs = store_content(root)
        if folders or blobs:
            report.add("database", "problem",
                       f"the database is missing (or empty) but the store holds {folders} run folders and "
                       f"{blobs} blobs: restore mayuri.db from a backup, or run `mayuri doctor --rebuild`.")
            return report
    elif _wal_lost(db_path, report) or _damaged(db_path, yes, report):
        return report
    store = open_store(root, allow_network_fs=settings.store.allow_network_fs,
                       busy_timeout=settings.store.busy_timeout)
    try:
        return doctor(store, report, progress)
    finally:
        store.close()
