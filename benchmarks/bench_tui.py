"""Dashboard benchmark on a big store: first screen, filters, and a 100,000-point chart.

    python benchmarks/make_big_store.py /tmp/big      # once: 100k runs, 10M points
    python benchmarks/bench_tui.py /tmp/big

Targets (issue 6): the first screen ready in under 1 s, a filter answered in
under 150 ms, a 100k-point chart drawn in under 300 ms. Each figure is the
dashboard's time, headless through `App.run_test()`, from the action to the
moment the rows (or the chart) are on screen, printed next to the raw time of
the store query it waits on, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from mayuri.config import load_settings
from mayuri.store import open_store
from mayuri.store.browse_queries import RunQuery, count_runs, page_runs
from mayuri.store.metric_queries import metric_series
from mayuri.tui.app import MayuriApp, make_app
from mayuri.tui.screens.run_screen import RunScreen
from mayuri.tui.screens.runs_screen import RunsScreen
from mayuri.tui.widgets.charts.metric_chart import MetricChart
from mayuri.tui.widgets.run.metrics_panel import MetricsPanel
from mayuri.tui.widgets.runs.run_table import PAGE_SIZE, RunTable

# A sort given in the filter stays until another is given: the last one puts the default back.
FILTERS = ("status:failed", "lr>1e-3", "user:ana job:train", "exp:exp-03 status:succeeded",
           "batch_size=64 lr<=3e-4 sort:-duration", "status:failed", "sort:-started")
SIZE = (120, 40)
POLL = 0.002


async def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError("the dashboard did not get there in time")
        await asyncio.sleep(POLL)


def _raw(action: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return min(times)


class Drawn:
    """When the table last drew a line of a run (by query generation), and the chart its lines.

    The figures stop the clock when the widgets hand their lines to the
    compositor, that is when the user sees them, not when the app goes idle.
    """

    table: ClassVar[dict[int, float]] = {}
    chart: ClassVar[float] = 0.0

    @classmethod
    def install(cls) -> None:
        table_line = RunTable._line
        chart_render = MetricChart.render

        def line(self: RunTable, *args: object) -> object:
            cls.table.setdefault(self.generation, time.perf_counter())
            return table_line(self, *args)  # type: ignore[arg-type]

        def render(self: MetricChart) -> object:
            result = chart_render(self)
            if self.points:
                cls.chart = time.perf_counter()
            return result

        RunTable._line = line  # type: ignore[method-assign]
        MetricChart.render = render  # type: ignore[method-assign]


def _drawn(app: MayuriApp, after: int = -1) -> bool:
    screen = app.screen
    if not isinstance(screen, RunsScreen) or screen.loaded_generation <= after:
        return False
    table = screen.query_one(RunTable)
    return table.total == 0 or table.generation in Drawn.table


def _first_rows_shown(app: MayuriApp) -> bool:
    return _drawn(app)


async def first_screen(root: Path) -> tuple[float, float]:
    """(seconds until the first rows are drawn, seconds until the app is idle)."""
    Drawn.table.clear()
    began = time.perf_counter()
    app = make_app(load_settings(root), poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await _until(lambda: _first_rows_shown(app))
        drawn = Drawn.table[app.screen.query_one(RunTable).generation] - began
        await pilot.pause()
        return drawn, time.perf_counter() - began


async def filters(root: Path) -> list[tuple[str, float, RunQuery]]:
    app = make_app(load_settings(root), poll_interval=3600)
    results = []
    async with app.run_test(size=SIZE) as pilot:
        await _until(lambda: _first_rows_shown(app))
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await pilot.pause()
        for text in FILTERS:
            before = screen.loaded_generation
            began = time.perf_counter()
            screen.apply_filter(text, quiet=False)
            await _until(lambda before=before: _drawn(app, before))
            table = screen.query_one(RunTable)
            done = Drawn.table.get(table.generation, time.perf_counter())
            results.append((text, done - began, screen.run_query))
            await pilot.pause()
    return results


async def chart(root: Path, run_id: str) -> tuple[float, int]:
    app = make_app(load_settings(root), poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await _until(lambda: _first_rows_shown(app))
        app.push_screen(RunScreen(run_id))
        await pilot.pause()
        await pilot.press("2")
        plot = app.screen.query_one(MetricChart)
        await _until(lambda: plot.points > 0)
        panel = app.screen.query_one(MetricsPanel)
        await pilot.pause()
        plot.points = 0
        Drawn.chart = 0.0
        began = time.perf_counter()
        panel.load_series(["loss"])
        await _until(lambda: Drawn.chart > began)
        return Drawn.chart - began, plot.points


def cold_start(root: Path) -> float:
    """Seconds from a fresh interpreter to the first rows on screen (imports included)."""
    code = (
        "import time; t = time.perf_counter(); import asyncio, sys; sys.path.insert(0, 'benchmarks');"
        "import bench_tui as b; from pathlib import Path;"
        f"b.Drawn.install(); asyncio.run(b.first_screen(Path({str(root)!r})));"
        "print(min(b.Drawn.table.values()) - t)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="a project made by make_big_store.py")
    args = parser.parse_args()
    settings = load_settings(args.root)
    store = open_store(settings.store.path)
    total = count_runs(store, RunQuery())
    long_run = store.db.execute_sql(
        "SELECT run_id FROM metric_summary WHERE key_id = 1 ORDER BY count DESC LIMIT 1").fetchone()[0]
    print(f"store: {total:,} runs; chart run {long_run[:8]}")

    raw_first = _raw(lambda: (count_runs(store, RunQuery(metric="loss")),
                              page_runs(store, RunQuery(metric="loss"), 0, PAGE_SIZE)))
    Drawn.install()
    ready = [asyncio.run(first_screen(args.root)) for _ in range(3)]
    cold = cold_start(args.root)
    drawn = statistics.median(r[0] for r in ready)
    idle = statistics.median(r[1] for r in ready)
    print(f"first screen: rows drawn after {drawn * 1000:.0f} ms in process (median of 3; the app is idle "
          f"after {idle * 1000:.0f} ms), {cold * 1000:.0f} ms from a cold interpreter (imports included); "
          f"raw count+page query {raw_first * 1000:.1f} ms (target < 1000 ms)")

    for text, took, query in asyncio.run(filters(args.root)):
        raw = _raw(lambda q=query: page_runs(store, q, 0, PAGE_SIZE))
        counting = _raw(lambda q=query: count_runs(store, q))
        print(f"filter {text!r:40} first page on screen in {took * 1000:4.0f} ms (raw page query "
              f"{raw * 1000:5.1f} ms, ratio {took / raw:5.1f}x; the count of {count_runs(store, query):,} "
              f"follows, {counting * 1000:.0f} ms of SQL) (target < 150 ms)")

    took, points = asyncio.run(chart(args.root, long_run))
    raw_series = _raw(lambda: metric_series(store, long_run, "loss"), repeat=1)
    raw_down = _raw(lambda: metric_series(store, long_run, "loss", max_points=2 * SIZE[0]))
    print(f"chart of a 100,000-point series: {took * 1000:.0f} ms to the screen ({points} points drawn); "
          f"raw downsampled query {raw_down * 1000:.1f} ms, raw full series read {raw_series * 1000:.0f} ms "
          "(target < 300 ms)")
    store.close()


if __name__ == "__main__":
    main()
