"""RELIABILITY.md test 22, gc's part: nothing outside the store is ever deleted, and no symlink is followed.

Links planted in run folders and in blobs/ point at a folder outside the
store; forged run ids try to climb out of runs/. After gc has collected
everything it may, every file outside the store is still there. (Artifact
names such as `../x` are refused when saved: the artifacts tests cover that.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mayuri.store.records import ensure_experiment
from tests.gc.gc_helpers import Filler, gc_json


def outside_tree(base: Path) -> Path:
    outside = base / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "precious.txt").write_text("keep me")
    (outside / "deep" / "also.txt").write_text("keep me too")
    (outside / ("ab" * 64)).write_text("named like a blob")
    return outside


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_links_and_forged_ids_never_lead_gc_outside_the_store(
    project: Any, filler: Filler, tmp_path: Path
) -> None:
    outside = outside_tree(tmp_path)
    before = snapshot(outside)
    # Links inside a run folder that gc will delete: to a file and to a folder outside.
    linked = filler.run(age_days=40)
    os.symlink(outside / "precious.txt", filler.store.runs / linked / "link-to-file")
    os.symlink(outside, filler.store.runs / linked / "link-to-folder")
    # A run whose folder itself is a link to the outside.
    swapped = filler.run(age_days=40)
    for child in (filler.store.runs / swapped).iterdir():
        child.unlink()
    (filler.store.runs / swapped).rmdir()
    os.symlink(outside, filler.store.runs / swapped)
    # Run rows whose ids try to climb out of runs/.
    experiment = ensure_experiment(filler.store, "forged")
    for forged in ("../../outside", "..", "/etc", "a/../../b"):
        filler.store.db.execute_sql(
            "INSERT INTO run (id, experiment_id, job, status, config_hash, created_at, user, host, run_dir) "
            "VALUES (?, ?, 'x', 'failed', 'x', 0, 'u', 'h', ?)",
            (forged, experiment, str(outside)),
        )
    # A blob fan-out folder and a temp folder entry that are links to the outside.
    os.symlink(outside, filler.store.blobs / "ab")
    (filler.store.blobs / "tmp").mkdir(exist_ok=True)
    os.symlink(outside / "precious.txt", filler.store.blobs / "tmp" / "blob-link")
    os.utime(filler.store.blobs / "tmp" / "blob-link", (0, 0), follow_symlinks=False)

    code, out = gc_json(project, "--older-than", "1d", "--grace", "0s", "--purge", "--yes")
    assert code == 0, out
    assert linked in {r["id"] for r in out["plan"]["runs"]}
    assert snapshot(outside) == before
    assert (outside / "precious.txt").read_text() == "keep me"
    assert not (filler.store.runs / linked).exists()
    # The linked run folder is left alone (its row became a tombstone); so are the blob links.
    assert (filler.store.runs / swapped).is_symlink()
    assert (filler.store.blobs / "ab").is_symlink() and (
        filler.store.blobs / "tmp" / "blob-link"
    ).is_symlink()


def test_a_store_reached_through_a_symlink_is_collected_in_place(
    project: Any, filler: Filler, tmp_path: Path
) -> None:
    outside = outside_tree(tmp_path)
    before = snapshot(outside)
    alias = tmp_path / "alias"
    os.symlink(filler.store.root, alias)
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text().replace('path = ".mayuri"', f'path = "{alias}"'))
    old = filler.run(age_days=40)
    code, out = gc_json(project, "--older-than", "1d", "--yes")
    assert code == 0 and {r["id"] for r in out["plan"]["runs"]} == {old}
    assert not (filler.store.runs / old).exists() and alias.is_symlink()
    assert snapshot(outside) == before
