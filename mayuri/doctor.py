"""`mayuri doctor`: check the store and repair what is safe to repair.

Checks SQLite's integrity and foreign keys, settles the runs of schedulers
that died (jobs still running are left to finish and adopted; ended ones
recorded from their supervisor's record; the rest orphaned), drops stray
leases, warns about a large `-wal` file (a reader that never ends keeps it
from being checkpointed) and about database files the group cannot write in
a group-shared store. It never deletes runs or blobs and never prints.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from mayuri.scheduler.recovery import recover
from mayuri.store.db import Store
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


def _recovery(store: Store, report: DoctorReport) -> None:
    found = recover(store)
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


def doctor(store: Store) -> DoctorReport:
    """Check the store and repair what is safe."""
    report = DoctorReport()
    _integrity(store, report)
    _recovery(store, report)
    _wal(store, report)
    _permissions(store, report)
    return report
