"""Two or more runs side by side: params (differences marked), metric summaries, overlaid series,
and (for two runs) a unified diff of each code or config file that changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, SelectionList, Static

from mayuri.store.metric_queries import Summary, metric_series, metric_summaries
from mayuri.store.queries import RunRow, get_run
from mayuri.store.text_diff_queries import FileDiff, file_diffs
from mayuri.tui.formatting import format_number, format_value, main_metric, status_text
from mayuri.tui.messages import StoreChanged
from mayuri.tui.store_reading import ReadsStore
from mayuri.tui.widgets.charts.metric_chart import MetricChart, Series
from mayuri.tui.widgets.run.metrics_panel import chart_points

MISSING = object()


def differing(values: list[Any]) -> bool:
    """Whether the runs disagree on a value (a missing key counts as a value)."""
    return any(v != values[0] for v in values[1:])


class CompareScreen(ReadsStore, Screen[None]):
    """Params and metrics of the chosen runs; rows that differ are marked with ≠."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "app.pop_screen", "Back", id="compare.back", tooltip="Back to the list"),
        Binding("d", "toggle_same", "Only differences", id="compare.only_diff",
                tooltip="Hide the params that are the same in every run"),
    ]

    @dataclass
    class Loaded(Message):
        runs: list[RunRow]
        metrics: dict[str, dict[str, Summary]]
        files: list[FileDiff] | None

    @dataclass
    class SeriesLoaded(Message):
        series: Mapping[str, Series]

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.runs: list[RunRow] = []
        self.metrics: dict[str, dict[str, Summary]] = {}
        self.only_differences = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("params and metrics", classes="section-title")
        yield DataTable(id="compare-params", zebra_stripes=True, cursor_type="row")
        with Horizontal(id="compare-chart-row"):
            yield SelectionList[str](id="compare-keys")
            yield MetricChart(id="compare-chart")
        if len(self.run_ids) == 2:
            with VerticalScroll(id="compare-files-box"):
                yield Static("", id="compare-files")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"comparing {len(self.run_ids)} runs"
        self.load()

    def on_store_changed(self, message: StoreChanged) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def load(self) -> None:
        runs = [get_run(self.store, rid) for rid in self.run_ids]
        files = file_diffs(self.store, runs[0].id, runs[1].id) if len(runs) == 2 else None
        self.post_message(self.Loaded(runs, metric_summaries(self.store, [r.id for r in runs]), files))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        first = not self.runs
        self.runs, self.metrics = message.runs, message.metrics
        self._fill_table()
        if message.files is not None:
            self._show_files(message.files)
        if first:
            keys = sorted({k for m in self.metrics.values() for k in m})
            main_key = main_metric(keys)
            chosen = {main_key} if main_key else set()
            self.query_one("#compare-keys", SelectionList).add_options([(k, k, k in chosen) for k in keys])
            self.load_series(sorted(chosen))

    def _fill_table(self) -> None:
        table = self.query_one("#compare-params", DataTable)
        table.clear(columns=True)
        table.add_column("", key="mark", width=1)
        table.add_column("", key="name")
        for run in self.runs:
            table.add_column(f"{run.id[:8]} {run.job}", key=run.id)
        table.add_row("", "status", *[status_text(r.status) for r in self.runs], key="status")
        keys = sorted({k for r in self.runs for k in r.params})
        for key in keys:
            values = [r.params.get(key, MISSING) for r in self.runs]
            self._add(table, f"param:{key}", key, values,
                      lambda v: "-" if v is MISSING else format_value(v))
        metric_keys = sorted({k for m in self.metrics.values() for k in m})
        for key in metric_keys:
            values = [self.metrics.get(r.id, {}).get(key) for r in self.runs]
            lasts = [v.last if v is not None else None for v in values]
            self._add(table, f"metric:{key}", f"{key} (last)", lasts, format_number)

    def _show_files(self, files: list[FileDiff]) -> None:
        from mayuri.render import file_diff_text

        text = Text("files that changed\n", style="bold")
        if not files:
            text.append("(no code or config file changed)", style="dim")
        for diff in files:
            text.append_text(file_diff_text(diff))
            text.append("\n")
        self.query_one("#compare-files", Static).update(text)

    def _add(self, table: DataTable, row_key: str, name: str, values: list[Any], show: Any) -> None:
        differs = differing(values)
        if self.only_differences and not differs:
            return
        style = "bold yellow" if differs else ""
        cells = [Text(show(v), style=style) for v in values]
        table.add_row(Text("≠", style="bold yellow") if differs else "", name, *cells, key=row_key)

    def action_toggle_same(self) -> None:
        self.only_differences = not self.only_differences
        self._fill_table()

    @on(SelectionList.SelectedChanged, "#compare-keys")
    def _keys_changed(self) -> None:
        self.load_series(sorted(self.query_one("#compare-keys", SelectionList).selected))

    @work(thread=True, exclusive=True, group="compare-series", exit_on_error=False)
    def load_series(self, keys: list[str]) -> None:
        points = chart_points(self.query_one(MetricChart).size.width)
        series = {f"{rid[:8]} {key}": metric_series(self.store, rid, key, max_points=points)
                  for rid in self.run_ids for key in keys}
        self.post_message(self.SeriesLoaded(series))

    @on(SeriesLoaded)
    def _series_loaded(self, message: SeriesLoaded) -> None:
        self.query_one(MetricChart).show(message.series, title="overlaid")
