"""The runs screen on stores made by real runs: listing, filtering, sorting, grouping, live refresh."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Static

from mayuri.store.browse_queries import page_runs
from mayuri.tui.screens.run_screen import RunScreen
from mayuri.tui.screens.runs_screen import RunsScreen
from mayuri.tui.widgets.runs.run_table import RunTable
from tests.conftest import Project
from tests.tui.conftest import app_for, run_failing_shards, runs_loaded, text_of, wait_until


def shown_jobs(table: RunTable) -> list[str]:
    rows = [table.row_at(i) for i in range(table.total)]
    return [r.job for r in rows if r is not None]


async def test_lists_every_run_newest_first_with_status_and_metric(demo: Project) -> None:
    app = app_for(demo.root)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await runs_loaded(pilot)
        table = screen.query_one(RunTable)
        assert table.total == 4
        ids_by_cli = [r["id"] for r in demo.runs()]
        assert [table.row_at(i).id for i in range(4)] == ids_by_cli  # type: ignore[union-attr]
        statuses = sorted(table.row_at(i).status for i in range(4))  # type: ignore[union-attr]
        assert statuses == ["failed", "succeeded", "succeeded", "succeeded"]
        # The first metric logged in the store becomes the metric column.
        assert screen.run_query.metric == "loss"
        train = [table.row_at(i) for i in range(4) if table.row_at(i).job == "train"]  # type: ignore[union-attr]
        assert all(r is not None and r.metric is not None and r.metric < 1 for r in train)
        assert "4 runs" in text_of(screen.query_one("#summary", Static))


async def test_filter_bar_narrows_and_reports_mistakes(demo: Project) -> None:
    app = app_for(demo.root)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await runs_loaded(pilot)
        table = screen.query_one(RunTable)
        await pilot.press("slash")
        assert app.focused is screen.query_one("#filter", Input)
        await pilot.press(*"job:train lr>0.005", "enter")
        await wait_until(pilot, lambda: table.total == 1, what="the filter")
        row = table.row_at(0)
        assert row is not None and row.job == "train" and row.params["lr"] == 0.01
        assert app.focused is table

        screen.query_one("#filter", Input).value = ""
        await pilot.press("slash", "enter")
        await wait_until(pilot, lambda: table.total == 4, what="the cleared filter")

        await pilot.press("slash", *"status:failed", "enter")
        await wait_until(pilot, lambda: table.total == 1)
        assert shown_jobs(table) == ["broken"]

        # Keys that are bindings elsewhere (q quits, x cancels) are text in the bar.
        await pilot.press("slash", *" quality:x", "enter")
        await pilot.pause(0.1)
        assert app.is_running and screen.query_one("#filter", Input).value.endswith("quality:x")
        assert screen.query_one("#filter", Input).has_class("-invalid")
        assert table.total == 1  # a filter that cannot be read changes nothing


async def test_sorting_by_columns(demo: Project) -> None:
    app = app_for(demo.root)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await runs_loaded(pilot)
        table = screen.query_one(RunTable)
        # Waits on what is shown, not on a load count: the live refresh also reloads.
        screen.apply_filter("sort:job", quiet=False)
        await wait_until(pilot, lambda: shown_jobs(table) == ["broken", "prep", "train", "train"],
                         what="rows sorted by job")
        await pilot.press("o")
        await wait_until(pilot, lambda: shown_jobs(table) == ["train", "train", "prep", "broken"],
                         what="rows in reverse order")
        await pilot.press("s")
        await wait_until(pilot, lambda: screen.run_query.sort == "status", what="the next sort column")


async def test_a_live_refresh_right_after_a_new_order_does_not_lose_it(demo: Project) -> None:
    app = app_for(demo.root)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await runs_loaded(pilot)
        table = screen.query_one(RunTable)
        screen.apply_filter("sort:job", quiet=False)
        await wait_until(pilot, lambda: shown_jobs(table) == ["broken", "prep", "train", "train"],
                         what="rows sorted by job")
        # The store changes while the reversed order's first page is on its way.
        screen.action_sort_reverse()
        screen.refresh_data()
        await wait_until(pilot, lambda: shown_jobs(table) == ["train", "train", "prep", "broken"],
                         what="rows in reverse order", timeout=5.0)


async def test_grouping_by_experiment_and_drilling_in(demo: Project) -> None:
    app = app_for(demo.root)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await runs_loaded(pilot)
        await pilot.press("g")
        groups = screen.query_one("#groups", DataTable)
        await wait_until(pilot, lambda: groups.row_count == 1, what="the groups")
        assert groups.get_row_at(0)[0] == "demo"
        assert groups.get_row_at(0)[1] == "4"
        await pilot.press("enter")
        await wait_until(pilot, lambda: not screen.grouped and screen.run_query.fields == {"experiment": ("demo",)})
        assert screen.query_one(RunTable).display


async def test_opening_a_run_and_coming_back(demo: Project) -> None:
    app = app_for(demo.root)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await runs_loaded(pilot)
        table = screen.query_one(RunTable)
        await pilot.press("down")
        second = table.current
        assert second is not None and table.cursor == 1
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen))
        assert isinstance(app.screen, RunScreen) and app.screen.run_id == second.id
        await pilot.press("escape")
        assert app.screen is screen


async def test_live_refresh_shows_new_runs_in_place(project: Project) -> None:
    project.write("exp.yaml", "name: live\njobs:\n  a:\n    run: python -c pass\n")
    assert project.mayuri("run", "exp.yaml").returncode == 0
    app = app_for(project.root, poll_interval=0.1)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await runs_loaded(pilot)
        table = screen.query_one(RunTable)
        await wait_until(pilot, lambda: table.total == 1)
        generation = table.generation
        await pilot.press("down")
        assert project.mayuri("run", "exp.yaml", "--force").returncode == 0
        await wait_until(pilot, lambda: table.total == 2, what="the new run to appear")
        # Refreshed in place: same query generation, so nothing was cleared.
        assert table.generation == generation
        await wait_until(pilot, lambda: table.row_at(1) is not None)


async def test_empty_store(project: Project) -> None:
    app = app_for(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await runs_loaded(pilot)
        assert screen.query_one(RunTable).total == 0
        await pilot.press("enter", "down", "space", "c", "g", "g")
        assert app.is_running


async def test_command_palette_offers_sorting_and_filters(demo: Project) -> None:
    app = app_for(demo.root)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await runs_loaded(pilot)
        titles = {c.title: c for c in app.get_system_commands(screen)}
        assert {"Caches", "GPUs and queue", "Sort by duration", "Show failed runs"} <= set(titles)
        titles["Show failed runs"].callback()
        await wait_until(pilot, lambda: screen.query_one(RunTable).total == 1)
        titles["Sort by duration"].callback()
        assert screen.run_query.sort == "duration"
        await pilot.press("ctrl+p")
        await pilot.press(*"Sort by job")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.run_query.sort == "job", what="the palette command")


async def test_the_shards_of_a_job_are_one_line_with_their_progress_unfolded_by_t(project: Project) -> None:
    run_failing_shards(project, '      other:\n        run: "true"\n')
    async with app_for(project.root).run_test(size=(140, 30)) as pilot:
        screen = await runs_loaded(pilot)
        table = screen.query_one(RunTable)

        def lines() -> list[tuple[str, str, str]]:
            rows = [table.row_at(i) for i in range(table.total)]
            cells = [table._cells(r) for r in rows if r is not None]
            return sorted((c["job"], c["status"], c["params"]) for c in cells)

        await wait_until(pilot, lambda: table.total == 2, what="one line for the shards")
        assert lines() == [("other", "succeeded", ""), ("▸ ev[3 shards]", "failed", "2 of 3 done · failed: 2")]
        assert "2 runs" in text_of(screen.query_one("#summary", Static))
        table.cursor = next(i for i in range(2) if table.row_at(i).group)  # type: ignore[union-attr]
        await pilot.press("t")
        await wait_until(pilot, lambda: table.total == 4, what="the shards unfolded")
        jobs = [job for job, _, _ in lines()]
        assert "other" in jobs and len([j for j in jobs if j.startswith("  ev[")]) == 2
        assert jobs[-1].startswith("▾ ev[") and jobs[-1].endswith("/3]")
        # The cursor stays on the group (put back once the unfolded page has loaded).
        await wait_until(pilot, lambda: table.current is not None and bool(table.current.group),
                         what="the cursor on the group")
        await pilot.press("t")
        await wait_until(pilot, lambda: table.total == 2, what="the shards folded again")


async def test_the_first_page_of_a_query_loaded_again_keeps_the_cursor(demo: Project) -> None:
    # A store change while a query's first page is on its way loads that page again (`refresh_data`); the
    # second answer used to send the cursor back to the top, away from the run (or shard group) it was on.
    async with app_for(demo.root).run_test(size=(120, 30)) as pilot:
        screen = await runs_loaded(pilot)
        table = screen.query_one(RunTable)
        await wait_until(pilot, lambda: table.total >= 3, what="the runs")
        table.cursor = 2
        chosen = table.current
        assert chosen is not None
        # The second answer, as `load_first` sends it (posted here: a worker may be cancelled by another).
        rows = page_runs(screen.store, screen.run_query, 0, 100)
        screen.post_message(RunsScreen.Loaded(screen.run_query, screen.loaded_generation, len(rows), {0: rows},
                                              fresh=True))
        await pilot.pause()
        assert table.cursor == 2 and table.current is not None and table.current.id == chosen.id
