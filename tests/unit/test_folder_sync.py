"""A node's run folder brought to the head: appended bytes, replaced files whole, only the run's own files."""

from __future__ import annotations

import os
from pathlib import Path

from mayuri.executors.remote.sync import FolderSync, apply


def test_appends_replacements_and_only_regular_files_reach_the_head(tmp_path: Path) -> None:
    node, head = tmp_path / "node", tmp_path / "head"
    node.mkdir()
    head.mkdir()
    sync = FolderSync(node, skip=("params.json",))
    (node / "stdout.log").write_text("first\n")
    (node / "params.json").write_text("{}")  # the head's own: never sent back
    (node / "spool").mkdir()
    (node / "spool" / "frame.tmp").write_text("half written")
    os.symlink("/etc/hostname", node / "link")
    os.mkfifo(node / "fifo")
    changes = sync.changes()
    assert changes == [("stdout.log", -1, b"first\n")]
    apply(head, changes)
    assert sync.changes() == []  # nothing new
    with open(node / "stdout.log", "a") as log:
        log.write("second\n")
    (node / "outputs.json").write_text('{"a": 1}')
    changes = sync.changes()
    assert changes == [("outputs.json", -1, b'{"a": 1}'), ("stdout.log", 6, b"second\n")]
    apply(head, changes)
    # Replaced (a new inode): the whole file again.
    (node / "outputs.json.new").write_text('{"a": 2}')
    os.replace(node / "outputs.json.new", node / "outputs.json")
    apply(head, sync.changes())
    assert sorted(p.name for p in head.iterdir()) == ["outputs.json", "stdout.log"]
    assert (head / "stdout.log").read_text() == "first\nsecond\n"
    assert (head / "outputs.json").read_text() == '{"a": 2}'


def test_a_change_naming_a_path_outside_the_run_folder_is_not_written(tmp_path: Path) -> None:
    head = tmp_path / "head"
    head.mkdir()
    apply(head, [("../escaped.txt", -1, b"x"), ("ok.txt", -1, b"y")])
    assert not (tmp_path / "escaped.txt").exists() and (head / "ok.txt").read_bytes() == b"y"
