"""One run's tabs on a store made by real runs: overview, metrics charts, logs, code, lineage; compare."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Log, Static, TabbedContent

from mayuri.tui.screens.compare_screen import CompareScreen
from mayuri.tui.screens.run_screen import RunScreen
from mayuri.tui.widgets.charts.metric_chart import MetricChart
from mayuri.tui.widgets.run.code_panel import CodePanel
from mayuri.tui.widgets.run.lineage_panel import LineagePanel
from mayuri.tui.widgets.run.metrics_panel import chart_points
from mayuri.tui.widgets.runs.run_table import RunTable
from tests.conftest import Project
from tests.tui.conftest import (
    app_for,
    fill_demo,
    run_failing_shards,
    runs_loaded,
    text_of,
    wait_until,
)


def run_of(project: Project, job: str, **params: object) -> str:
    for run in project.runs():
        if run["job"] == job and all(run["params"].get(k) == v for k, v in params.items()):
            return str(run["id"])
    raise AssertionError(f"no {job} run with {params}")


async def open_run(pilot: Pilot[None], run_id: str) -> RunScreen:
    await runs_loaded(pilot)
    pilot.app.push_screen(RunScreen(run_id))
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, RunScreen)
                     and pilot.app.screen.overview is not None, what="the run screen")
    return pilot.app.screen  # type: ignore[no-any-return]


async def test_overview_shows_params_attempts_and_outputs(demo: Project) -> None:
    run_id = run_of(demo, "train", lr=0.01)
    async with app_for(demo.root).run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, run_id)
        text = text_of(screen.query_one("#overview-body", Static))
        for expected in (run_id, "demo / train", "succeeded", "lr", "0.01", "batch_size", "model-0.01",
                         "attempts", "loss"):
            assert expected in text, expected


async def test_metrics_tab_draws_the_logged_series(demo: Project) -> None:
    run_id = run_of(demo, "train", lr=0.001)
    async with app_for(demo.root).run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, run_id)
        await pilot.press("2")
        assert screen.query_one(TabbedContent).active == "metrics"
        chart = screen.query_one("#metric-chart", MetricChart)
        await wait_until(pilot, lambda: chart.labels == ["accuracy", "loss"], what="the chart")
        # 300 steps of each key, downsampled to what the chart's width can show.
        assert 0 < chart.points <= 2 * chart_points(chart.size.width)
        await pilot.pause(0.1)
        assert "step" in chart.plt.build()


async def test_logs_tab_tails_stdout_and_switches_to_stderr(demo: Project) -> None:
    run_id = run_of(demo, "broken")
    async with app_for(demo.root).run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, run_id)
        await pilot.press("3")
        log = screen.query_one("#log", Log)
        await pilot.press("e")
        await wait_until(pilot, lambda: any("about to fail" in line for line in log.lines), what="stderr")


async def test_code_tab_shows_kept_code_and_a_diff(project: Project) -> None:
    demo = fill_demo(project)
    first = run_of(demo, "train", lr=0.001)
    demo.write("src/helpers.py", "def curve(step, lr):\n    return 2.0 / (1 + step * lr)\n")
    done = demo.mayuri("run", "exp.yaml", "--only", "train")
    assert done.returncode == 0, done.stderr
    second = next(r["id"] for r in demo.runs("--job", "train") if r["params"]["lr"] == 0.001)
    assert second != first
    async with app_for(demo.root).run_test(size=(140, 40)) as pilot:
        screen = await open_run(pilot, second)
        await pilot.press("4")
        panel = screen.query_one(CodePanel)
        table = panel.query_one("#closure", DataTable)
        await wait_until(pilot, lambda: table.row_count >= 2)
        paths = [table.get_row_at(i)[1] for i in range(table.row_count)]
        assert "src/helpers.py" in paths and "src/train.py" in paths
        # The earlier run of the same job is offered for the diff.
        assert panel.query_one("#diff-against", Input).value == first[:8]
        panel.load_other(first)
        await wait_until(pilot, lambda: panel.other_id == first, what="the other run's closure")
        changes = {table.get_row_at(i)[1]: table.get_row_at(i)[4] for i in range(table.row_count)}
        assert changes["src/helpers.py"] == "changed" and changes["src/train.py"] == "same"
        table.focus()
        table.move_cursor(row=paths.index("src/helpers.py"))
        await pilot.press("enter")
        code = panel.query_one("#code", Static)
        await wait_until(pilot, lambda: "+    return 2.0" in text_of(code), what="the diff")
        diff = text_of(code)
        assert "-    return 1.0 / (1 + step * lr * 10)" in diff
        assert "+    return 2.0 / (1 + step * lr)" in diff


async def test_lineage_tree_jumps_to_the_upstream_run(demo: Project) -> None:
    train = run_of(demo, "train", lr=0.01)
    prep = run_of(demo, "prep")
    async with app_for(demo.root).run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, train)
        await pilot.press("5")
        tree = screen.query_one(LineagePanel)
        await wait_until(pilot, lambda: len(tree.root.children) == 2, what="the lineage")
        upstream = tree.root.children[0]
        assert [n.data for n in upstream.children] == [prep]
        tree.focus()
        tree.move_cursor(upstream.children[0])
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, RunScreen)
                         and pilot.app.screen.run_id == prep, what="the jump")
        prep_screen = pilot.app.screen
        await pilot.press("5")
        down_tree = prep_screen.query_one(LineagePanel)
        await wait_until(pilot, lambda: len(down_tree.root.children) == 2)
        assert train in [n.data for n in down_tree.root.children[1].children]
        await pilot.press("escape")
        assert pilot.app.screen is screen


async def test_compare_marks_differing_params_and_overlays_metrics(demo: Project) -> None:
    async with app_for(demo.root).run_test(size=(120, 40)) as pilot:
        screen = await runs_loaded(pilot)
        screen.apply_filter("job:train", quiet=False)
        table = screen.query_one(RunTable)
        await wait_until(pilot, lambda: table.total >= 2 and table.row_at(1) is not None
                         and all(table.row_at(i).job == "train" for i in range(table.total)))  # type: ignore[union-attr]
        await pilot.press("space", "space", "c")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen))
        compare = pilot.app.screen
        params = compare.query_one("#compare-params", DataTable)
        await wait_until(pilot, lambda: params.row_count > 3, what="the comparison")
        rows = {str(params.get_row_at(i)[1]): params.get_row_at(i) for i in range(params.row_count)}
        assert str(rows["lr"][0]) == "≠"
        assert str(rows["batch_size"][0]) == ""
        chart = compare.query_one(MetricChart)
        await wait_until(pilot, lambda: len(chart.labels) == 2, what="the overlaid chart")
        assert all(label.endswith(" loss") for label in chart.labels)


async def test_compare_of_two_runs_shows_the_diff_of_a_changed_config(project: Project) -> None:
    project.write("conf.txt", "lr = 0.1\nlayers = 2\n")
    project.write("job.py", "print(open('conf.txt').read())\n")
    project.write("exp.yaml", "jobs:\n  a:\n    run: python job.py\n")
    assert project.mayuri("run", "exp.yaml").returncode == 0
    project.write("conf.txt", "lr = 0.2\nlayers = 2\n")
    assert project.mayuri("run", "exp.yaml").returncode == 0
    ids = [r["id"] for r in project.runs()][::-1]
    async with app_for(project.root).run_test(size=(120, 50)) as pilot:
        await runs_loaded(pilot)
        pilot.app.push_screen(CompareScreen(ids))
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen)
                         and bool(pilot.app.screen.query("#compare-files")))
        files = pilot.app.screen.query_one("#compare-files", Static)
        await wait_until(pilot, lambda: "conf.txt" in text_of(files), what="the file diff")
        shown = text_of(files)
        assert "-lr = 0.1" in shown and "+lr = 0.2" in shown


async def test_overview_of_a_shard_shows_the_progress_of_its_group(project: Project) -> None:
    run_failing_shards(project)
    shard = project.runs("-s", "failed")[0]["id"]
    async with app_for(project.root).run_test(size=(140, 40)) as pilot:
        await runs_loaded(pilot)
        screen = await open_run(pilot, shard)
        text = text_of(screen.query_one("#overview-body", Static))
        assert "shard 2 of 3 · 2 of 3 done · failed: 2" in text
