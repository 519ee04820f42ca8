"""The GPU and queue screen with cancel, the caches screen with the gc preview, rerun's file lookup."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from mayuri.tui.run_actions import experiment_files, point_overrides
from mayuri.tui.screens.caches_screen import CachesScreen
from mayuri.tui.screens.confirm_modal import ConfirmModal
from mayuri.tui.screens.gpus_screen import GpusScreen
from tests.conftest import Project
from tests.tui.conftest import app_for, runs_loaded, text_of, wait_until

SLOW = """\
name: slow
jobs:
  sleeper:
    run: python -c "import time; time.sleep(120)"
"""


@pytest.fixture
def running(project: Project) -> subprocess.Popen[bytes]:
    """A real `mayuri run` whose job sleeps, left running while the test works."""
    project.write("slow.yaml", SLOW)
    env = dict(os.environ, MAYURI_FAKE_GPUS="2x16GiB")
    scheduler = subprocess.Popen([sys.executable, "-m", "mayuri", "run", "slow.yaml"], cwd=project.root,
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield scheduler
    if scheduler.poll() is None:
        scheduler.kill()
        scheduler.wait()


async def test_cancel_from_the_queue_screen_after_confirmation(
    project: Project, running: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAYURI_FAKE_GPUS", "2x16GiB")
    app = app_for(project.root)
    async with app.run_test(size=(100, 30)) as pilot:
        await runs_loaded(pilot)
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, GpusScreen))
        screen = app.screen
        gpus = screen.query_one("#gpu-table", DataTable)
        queue = screen.query_one("#queue-table", DataTable)
        await wait_until(pilot, lambda: gpus.row_count == 2, what="the fake GPUs")
        await wait_until(pilot, lambda: queue.row_count == 1 and screen.current_run() is not None
                         and screen.current_run().status == "running", timeout=60, what="the running job")
        run_id = screen.current_run().id  # type: ignore[union-attr]
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("n")
        assert app.screen is screen and project.runs()[0]["status"] == "running"
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(pilot, lambda: queue.row_count == 0, timeout=60, what="the queue to empty")
    assert running.wait(timeout=60) is not None
    assert project.show(run_id)["status"] == "cancelled"


async def test_caches_screen_lists_cached_jobs_and_previews_gc(demo: Project) -> None:
    app = app_for(demo.root)
    async with app.run_test(size=(100, 30)) as pilot:
        await runs_loaded(pilot)
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, CachesScreen))
        table = app.screen.query_one("#cache-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 2, what="the cache entries")
        entries = {table.get_row_at(i)[1]: table.get_row_at(i) for i in range(2)}
        assert entries["train"][2] == "2" and entries["prep"][2] == "1"
        preview = text_of(app.screen.query_one("#gc-preview", Static))
        assert "gc under the [gc] policy" in preview


def test_rerun_finds_the_experiment_file_by_its_name(tmp_path: Path) -> None:
    (tmp_path / "exps").mkdir()
    (tmp_path / "exps" / "a.yaml").write_text("name: alpha\njobs: {}\n")
    (tmp_path / "exps" / "b.yml").write_text("# comment\nname: 'beta'  # the second\njobs: {}\n")
    (tmp_path / ".mayuri").mkdir()
    (tmp_path / ".mayuri" / "c.yaml").write_text("name: alpha\n")
    assert experiment_files(tmp_path, "alpha") == [tmp_path / "exps" / "a.yaml"]
    assert experiment_files(tmp_path, "beta") == [tmp_path / "exps" / "b.yml"]
    assert experiment_files(tmp_path, "gamma") == []


def test_rerun_of_a_swept_run_pins_its_own_point(tmp_path: Path) -> None:
    file = tmp_path / "exp.yaml"
    file.write_text("jobs:\n  train:\n    run: \"true\"\n    params: {lr: 0.1, opt: {m: 1}, tag: a, note: n}\n"
                    "    sweep: {lr: [0.1, 0.2], opt.m: [1, 2]}\n  other:\n    run: \"true\"\n")
    params = {"lr": 0.2, "opt": {"m": 2}, "tag": "x", "note": "p,q"}
    assert point_overrides(file, "train", ["tag=x,y"], params) == ["train.lr=0.2", "train.opt.m=2", 'train.tag="x"']
    # A value an override cannot carry is left out; keys that are not swept are not pinned.
    assert point_overrides(file, "train", ["note=p,q,r"], params) == ["train.lr=0.2", "train.opt.m=2"]
    assert point_overrides(file, "other", ["tag=x,y"], {}) == []
    file.write_text("jobs: [broken")
    assert point_overrides(file, "train", [], params) == []


async def test_forced_rerun_starts_a_detached_mayuri_run(project: Project) -> None:
    project.write("exps/quick.yaml", "name: quick\njobs:\n  hello:\n    run: python -c \"print('hi')\"\n")
    assert project.mayuri("run", "exps/quick.yaml").returncode == 0
    app = app_for(project.root)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await runs_loaded(pilot)
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the confirmation")
        assert "mayuri run exps/quick.yaml --force --only hello" in text_of(app.screen.query_one("#detail", Static))
        await pilot.press("y")
        assert app.screen is screen
        await wait_until(pilot, lambda: len(project.runs()) == 2, timeout=60, what="the rerun")
    # The detached scheduler finishes on its own, after the dashboard is gone.
    deadline = time.monotonic() + 60
    while {r["status"] for r in project.runs()} != {"succeeded"}:
        assert time.monotonic() < deadline, project.runs()
        await asyncio.sleep(0.2)


async def _rerun_and_wait(project: Project, size: tuple[int, int], runs_after: int) -> str:
    """Press R on the newest run, confirm, and wait until the detached rerun has succeeded.

    Returns the confirmation's text (it shows the command).
    """
    app = app_for(project.root)
    async with app.run_test(size=size) as pilot:
        await runs_loaded(pilot)
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the confirmation")
        detail = text_of(app.screen.query_one("#detail", Static))
        await pilot.press("y")
        await wait_until(pilot, lambda: len(project.runs()) == runs_after, timeout=60, what="the rerun")
    # The detached scheduler finishes on its own, after the dashboard is gone.
    deadline = time.monotonic() + 60
    while {r["status"] for r in project.runs()} != {"succeeded"}:
        assert time.monotonic() < deadline, project.runs()
        await asyncio.sleep(0.2)
    return detail


async def test_rerun_uses_the_runs_recorded_file_and_overrides(project: Project) -> None:
    # No `name:`: the experiment is named after its folder, so no file carries that name.
    project.write("exps/exp.yaml", "jobs:\n  hello:\n    run: python -c \"print('${greeting}')\"\n"
                                   "    params: {greeting: hi}\n")
    assert project.mayuri("run", "exps/exp.yaml", "greeting=hey").returncode == 0
    (first,) = project.runs()
    assert first["source"] == "exps/exp.yaml" and first["overrides"] == ["greeting=hey"]
    detail = await _rerun_and_wait(project, (120, 30), runs_after=2)
    assert "mayuri run exps/exp.yaml greeting=hey --force --only hello" in detail
    newest = project.runs()[0]
    assert newest["id"] != first["id"] and newest["params"] == {"greeting": "hey"}
    assert project.mayuri("logs", newest["id"]).stdout.strip() == "hey"


async def test_rerun_of_a_swept_run_reruns_that_point_only(project: Project) -> None:
    project.write("exp.yaml", "jobs:\n  hello:\n    run: python -c \"print('${lr}')\"\n"
                              "    params: {lr: 1}\n    sweep: {lr: [1, 2, 3]}\n")
    assert project.mayuri("run", "exp.yaml").returncode == 0
    newest = project.runs()[0]
    detail = await _rerun_and_wait(project, (140, 30), runs_after=4)
    assert f"mayuri run exp.yaml hello.lr={newest['params']['lr']} --force --only hello" in detail
    runs = project.runs()
    assert len(runs) == 4 and runs[0]["params"] == newest["params"]


async def test_keys_remapped_in_mayuri_toml_work(demo: Project) -> None:
    config = demo.root / "mayuri.toml"
    original = config.read_text()
    config.write_text(original + '\n[keys]\n"app.caches" = "f7"\n')
    try:
        app = app_for(demo.root)
        async with app.run_test(size=(100, 30)) as pilot:
            await runs_loaded(pilot)
            await pilot.press("f2")
            await pilot.pause()
            assert not isinstance(app.screen, CachesScreen)
            await pilot.press("f7")
            await wait_until(pilot, lambda: isinstance(app.screen, CachesScreen), what="the caches screen")
    finally:
        config.write_text(original)
