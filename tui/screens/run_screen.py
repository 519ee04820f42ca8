"""One run in tabs: overview, metrics, logs, code, lineage. Escape goes back.

The overview and the closure are read in one thread worker; each other tab
reads its own data. A store change reloads the overview (status, attempts)
and the metrics, so a running run's page keeps up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from mayuri.inspect_runs import run_detail
from mayuri.store.artifact_queries import artifacts_of
from mayuri.store.browse_queries import RunListRow
from mayuri.store.detail_queries import peaks_of
from mayuri.store.metric_queries import metric_summaries
from mayuri.store.queries import latest_runs
from mayuri.tui.messages import StoreChanged
from mayuri.tui.run_actions import ACTIVE, RunActions
from mayuri.tui.store_reading import ReadsStore
from mayuri.tui.widgets.run.code_panel import CodePanel
from mayuri.tui.widgets.run.lineage_panel import LineagePanel
from mayuri.tui.widgets.run.log_panel import LogPanel
from mayuri.tui.widgets.run.metrics_panel import MetricsPanel
from mayuri.tui.widgets.run.overview_panel import Overview, OverviewPanel

TABS = ("overview", "metrics", "logs", "code", "lineage")


class RunScreen(ReadsStore, RunActions, Screen[None]):
    """Everything about one run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "app.pop_screen", "Back", id="run.back", tooltip="Back to the list"),
        *(Binding(str(n), f"tab('{name}')", name.title(), show=False, id=f"run.tab.{name}",
                  tooltip=f"Show the {name} tab") for n, name in enumerate(TABS, start=1)),
        Binding("e", "toggle_stream", "stdout/stderr", id="run.stream",
                tooltip="Logs: switch between stdout and stderr"),
        Binding("f", "toggle_follow", "Follow", id="run.follow", tooltip="Logs: follow new output"),
        Binding("x", "cancel_run", "Cancel", id="run.cancel", tooltip="Cancel this run if it is active"),
        Binding("R", "rerun", "Rerun", id="run.rerun", tooltip="Run this job again with --force"),
    ]

    @dataclass
    class Loaded(Message):
        overview: Overview
        previous: str | None

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.overview: Overview | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="tabs"):
            with TabPane("Overview", id="overview"):
                yield OverviewPanel(id="overview-panel")
            with TabPane("Metrics", id="metrics"):
                yield MetricsPanel(self.run_id, id="metrics-panel")
            with TabPane("Logs", id="logs"):
                yield LogPanel(id="log-panel")
            with TabPane("Code", id="code"):
                yield CodePanel(self.run_id, id="code-panel")
            with TabPane("Lineage", id="lineage"):
                yield LineagePanel(self.run_id, id="lineage-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"run {self.run_id[:8]}"
        self.load()

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def load(self) -> None:
        detail = run_detail(self.store, self.run_id)
        metrics = metric_summaries(self.store, [self.run_id]).get(self.run_id, {})
        view = Overview(detail, artifacts_of(self.store, self.run_id), metrics, peaks_of(self.store, self.run_id))
        # The run to diff against: the newest earlier run of the job, one with the same params first.
        earlier = [r for r in latest_runs(self.store, detail.run.experiment, detail.run.job, limit=20)
                   if r.id != self.run_id and r.created_at < detail.run.created_at]
        alike = [r for r in earlier if r.params == detail.run.params]
        previous = (alike or earlier)[0].id if earlier else None
        self.post_message(self.Loaded(view, previous))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        first = self.overview is None
        self.overview = message.overview
        run = message.overview.detail.run
        self.sub_title = f"{run.experiment} / {run.job} · {run.id[:8]} · {run.status}"
        self.query_one(OverviewPanel).show(message.overview)
        if first:
            self.query_one(CodePanel).show(message.overview.detail.closure, message.previous)
            self.query_one(LogPanel).open(run.run_dir)

    def on_store_changed(self, message: StoreChanged) -> None:
        self.load()
        # A finished run's metrics do not move; reading a long series again would be waste.
        if self.overview is None or self.overview.detail.run.status in ACTIVE:
            self.query_one(MetricsPanel).reload()

    def action_tab(self, name: str) -> None:
        self.query_one(TabbedContent).active = name

    def action_toggle_stream(self) -> None:
        self.query_one(LogPanel).toggle_stream()

    def action_toggle_follow(self) -> None:
        self.query_one(LogPanel).toggle_follow()

    def current_run(self) -> RunListRow | None:
        if self.overview is None:
            return None
        run = self.overview.detail.run
        gpus = self.overview.detail.attempts[-1].gpus if self.overview.detail.attempts else []
        return RunListRow(run.id, run.experiment, run.job, run.status, run.params, None, gpus,
                          run.started_at, run.ended_at, run.created_at, run.user, run.host)
