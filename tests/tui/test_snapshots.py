"""SVG snapshots of the main screens, on a generated store whose every value is fixed by a seed.

Update them on purpose, after looking at the pictures:
    .venv/bin/python -m pytest tests/tui/test_snapshots.py --snapshot-update
Real runs would put random ids and times on screen, so these use the
benchmark's generator (a real store, filled with raw inserts) at a small size.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from mayuri.tui.app import MayuriApp
from mayuri.tui.screens.caches_screen import CachesScreen
from mayuri.tui.screens.gpus_screen import GpusScreen
from mayuri.tui.screens.run_screen import RunScreen
from mayuri.tui.widgets.charts.metric_chart import MetricChart
from tests.conftest import Project
from tests.tui.conftest import app_for, runs_loaded, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from make_big_store import build_store

Snap = Callable[..., bool]


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("snap") / "fixed"
    build_store(root, runs=60, points=30_000, seed=7)
    return root


def first_train_run(root: Path) -> str:
    from mayuri.store import open_store
    from mayuri.store.browse_queries import RunQuery, page_runs

    store = open_store(root / ".mayuri")
    try:
        rows = page_runs(store, RunQuery(fields={"job": ("train",), "status": ("succeeded",)}), 0, 1)
        return rows[0].id
    finally:
        store.close()


def still(app: MayuriApp) -> MayuriApp:
    """No animations (a tab's underline slides): a snapshot must not catch one halfway."""
    app.animation_level = "none"
    return app


async def calm(pilot: Pilot[None]) -> None:
    """Let tables settle their column widths (done when the app is idle)."""
    await pilot.pause(0.2)
    # On a loaded machine the idle pass can come later than any fixed pause.
    await wait_until(pilot, lambda: not any(map(_measuring, pilot.app.screen.query(DataTable))),
                     what="the tables to measure their columns")
    await pilot.pause()


def _measuring(table: DataTable[Any]) -> bool:
    # DataTable's own marks of work left for its next idle pass (new rows, cells to measure).
    return table._require_update_dimensions or bool(table._updated_cells) or bool(table._new_rows)


async def settled(pilot: Pilot[None]) -> None:
    await runs_loaded(pilot)
    await calm(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_runs_screen(snap_compare: Snap, fixed: Path, utc: None, size: tuple[int, int]) -> None:
    assert snap_compare(still(app_for(fixed)), terminal_size=size, run_before=settled)


def test_runs_screen_light_theme(snap_compare: Snap, fixed: Path, utc: None) -> None:
    app = still(app_for(fixed))

    async def light(pilot: Pilot[None]) -> None:
        await settled(pilot)
        await pilot.press("ctrl+t")
        assert pilot.app.theme == "textual-light"
        await calm(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=light)


def test_runs_screen_filtered_and_grouped(snap_compare: Snap, fixed: Path, utc: None) -> None:
    async def grouped(pilot: Pilot[None]) -> None:
        screen = await runs_loaded(pilot)
        screen.apply_filter("job:train lr>=1e-3", quiet=False)
        await pilot.press("g")
        groups = screen.query_one("#groups", DataTable)
        await wait_until(pilot, lambda: groups.row_count > 0)
        await calm(pilot)

    assert snap_compare(still(app_for(fixed)), terminal_size=(100, 30), run_before=grouped)


def run_screen(tab: str, ready: Callable[[RunScreen], bool]) -> Callable[[Pilot[None]], Any]:
    async def before(pilot: Pilot[None]) -> None:
        await runs_loaded(pilot)
        pilot.app.push_screen(RunScreen(first_train_run(Path(pilot.app.settings.root))))
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, RunScreen)
                         and pilot.app.screen.overview is not None)
        await pilot.press(tab)
        await wait_until(pilot, lambda: ready(pilot.app.screen))  # type: ignore[arg-type]
        await calm(pilot)

    return before


def test_run_overview(snap_compare: Snap, fixed: Path, utc: None) -> None:
    assert snap_compare(still(app_for(fixed)), terminal_size=(100, 30), run_before=run_screen("1", lambda s: True))


def test_run_metrics_chart(snap_compare: Snap, fixed: Path, utc: None) -> None:
    ready = run_screen("2", lambda s: bool(s.query_one(MetricChart).labels))
    assert snap_compare(still(app_for(fixed)), terminal_size=(100, 30), run_before=ready)


def test_caches_screen(snap_compare: Snap, fixed: Path, utc: None) -> None:
    async def caches(pilot: Pilot[None]) -> None:
        await settled(pilot)
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, CachesScreen)
                         and pilot.app.screen.query_one("#cache-table", DataTable).row_count > 0)
        await calm(pilot)

    assert snap_compare(still(app_for(fixed)), terminal_size=(100, 30), run_before=caches)


def test_gpus_screen(snap_compare: Snap, fixed: Path, utc: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAYURI_FAKE_GPUS", "4x16GiB")

    async def gpus(pilot: Pilot[None]) -> None:
        await settled(pilot)
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, GpusScreen)
                         and pilot.app.screen.query_one("#gpu-table", DataTable).row_count == 4
                         and pilot.app.screen.query_one("#queue-table", DataTable).row_count > 0)
        await calm(pilot)

    assert snap_compare(still(app_for(fixed)), terminal_size=(100, 30), run_before=gpus)


def test_empty_store(snap_compare: Snap, project: Project) -> None:
    assert snap_compare(still(app_for(project.root)), terminal_size=(80, 24), run_before=settled)
