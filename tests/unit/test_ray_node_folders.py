"""A Ray node's run folders: held while a task uses them, deleted when the last task using them ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from mayuri.executors.ray import node


def test_an_upstream_folder_a_downstream_task_uses_outlives_the_upstream_task(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    monkeypatch.setattr(node, "node_store", lambda: store)
    up = {"run_dir": "/head/.mayuri/runs/aaa"}
    down = {"run_dir": "/head/.mayuri/runs/bbb"}
    upstream = node._holding_runs(up, {})
    upstream.__enter__()
    (store / "runs" / "aaa").mkdir()
    (store / "runs" / "aaa" / "data.txt").write_text("prepared")
    # The downstream task starts (on this node) before the upstream task's end has run: it holds the
    # upstream's folder, into which its upstream files go.
    with node._holding_runs(down, {"runs/aaa/data.txt": b"prepared", "runs/aaa/sub/x": b""}):
        (store / "runs" / "bbb").mkdir()
        upstream.__exit__(None, None, None)
        assert (store / "runs" / "aaa" / "data.txt").read_text() == "prepared"
    # The last task using each folder deleted it, and its lock file.
    assert list((store / "runs").iterdir()) == []

