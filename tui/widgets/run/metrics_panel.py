"""The metrics tab of a run: pick keys on the left, see them as lines on the right.

Series are read in a thread worker with `metric_series(..., max_points)`, so
a long series arrives downsampled to about two points per column of the chart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import SelectionList, Static

from mayuri.store.metric_queries import metric_keys, metric_series
from mayuri.tui.formatting import main_metric
from mayuri.tui.store_reading import ReadsStore
from mayuri.tui.widgets.charts.metric_chart import MetricChart, Series

DEFAULT_KEYS = 2


def chart_points(width: int) -> int:
    """How many points a series needs for a chart `width` cells wide (braille: 2 dots a cell)."""
    return max(200, 2 * width)


class MetricsPanel(ReadsStore, Horizontal):
    """Keys of one run and a chart of the chosen ones."""

    @dataclass
    class KeysLoaded(Message):
        keys: list[str]

    @dataclass
    class SeriesLoaded(Message):
        series: Mapping[str, Series]

    def __init__(self, run_id: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        yield SelectionList[str](id="metric-keys")
        yield MetricChart(id="metric-chart")
        yield Static("", id="metric-note")

    def on_mount(self) -> None:
        self.load_keys()

    def reload(self) -> None:
        self.load_keys()

    @work(thread=True, exclusive=True, group="metric-keys", exit_on_error=False)
    def load_keys(self) -> None:
        self.post_message(self.KeysLoaded(metric_keys(self.store, self.run_id)))

    @on(KeysLoaded)
    def _keys_loaded(self, message: KeysLoaded) -> None:
        keys = self.query_one("#metric-keys", SelectionList)
        chosen = set(keys.selected)
        shown = [keys.get_option_at_index(i).value for i in range(keys.option_count)]
        if shown == message.keys and chosen:
            self.load_series(sorted(chosen))
            return
        first = main_metric(message.keys)
        plain = [k for k in message.keys if not k.startswith("sys/") and k != first]
        chosen = chosen or set(([first] if first else []) + plain[:DEFAULT_KEYS - 1])
        keys.clear_options()
        keys.add_options([(k, k, k in chosen) for k in message.keys])
        note = self.query_one("#metric-note", Static)
        note.update("" if message.keys else "This run has logged no metrics.")
        self.load_series(sorted(chosen))

    @on(SelectionList.SelectedChanged, "#metric-keys")
    def _keys_changed(self) -> None:
        self.load_series(sorted(self.query_one("#metric-keys", SelectionList).selected))

    @work(thread=True, exclusive=True, group="metric-series", exit_on_error=False)
    def load_series(self, keys: list[str]) -> None:
        points = chart_points(self.query_one(MetricChart).size.width)
        series = {k: metric_series(self.store, self.run_id, k, max_points=points) for k in keys}
        self.post_message(self.SeriesLoaded(series))

    @on(SeriesLoaded)
    def _series_loaded(self, message: SeriesLoaded) -> None:
        self.query_one(MetricChart).show(message.series, title=self.run_id[:8])
