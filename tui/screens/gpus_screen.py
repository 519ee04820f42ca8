"""GPUs (NVML or the fake) with memory, utilisation and the Mayuri runs holding them; the queue.

The inventory comes from `mayuri.gpu.inventory()` and the holders from the
store's leases, both read in a thread worker every few seconds. The queue
lists queued and running runs; `x` cancels and `R` reruns the one under the
cursor, after a confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from mayuri.gpu import Gpu, inventory
from mayuri.store.browse_queries import RunListRow, RunQuery, count_runs, page_runs
from mayuri.store.gpu_holder_queries import GpuHolder, gpu_holders
from mayuri.tui.formatting import format_gpus, format_time, status_text
from mayuri.tui.messages import OpenRun, StoreChanged
from mayuri.tui.run_actions import ACTIVE, RunActions
from mayuri.tui.store_reading import ReadsStore
from mayuri.units import format_size

QUEUE_LIMIT = 500
REFRESH_SECONDS = 3.0


def holders_of(gpu: Gpu, holders: list[GpuHolder]) -> list[GpuHolder]:
    """The claims on `gpu`, whichever id (UUID, CUDA id or index) the claim recorded."""
    names = {gpu.uuid, str(gpu.index), getattr(gpu, "visible_id", gpu.uuid)}
    return [h for h in holders if h.gpu in names]


class GpusScreen(ReadsStore, RunActions, Screen[None]):
    """Each GPU and its holders above; queued and running runs below."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "app.pop_screen", "Back", id="gpus.back", tooltip="Back"),
        Binding("x", "cancel_run", "Cancel", id="gpus.cancel", tooltip="Cancel the run under the cursor"),
        Binding("R", "rerun", "Rerun", id="gpus.rerun", tooltip="Run this job again with --force"),
    ]

    @dataclass
    class Loaded(Message):
        gpus: list[Gpu]
        holders: list[GpuHolder]
        queue: list[RunListRow]
        queued_total: int

    def __init__(self) -> None:
        super().__init__()
        self.queue: dict[str, RunListRow] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("GPUs", classes="section-title", id="gpu-title")
        yield DataTable(id="gpu-table", cursor_type="row", zebra_stripes=True)
        yield Static("queued and running runs", classes="section-title", id="queue-title")
        yield DataTable(id="queue-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "GPUs and queue"
        self.query_one("#gpu-table", DataTable).add_columns(
            "gpu", "name", "memory used", "util", "held by")
        self.query_one("#queue-table", DataTable).add_columns(
            "id", "experiment", "job", "status", "gpu", "started", "user", "queued at")
        self.query_one("#queue-table", DataTable).focus()
        self.load()
        self.set_interval(REFRESH_SECONDS, self.load)

    def on_store_changed(self, message: StoreChanged) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="gpus", exit_on_error=False)
    def load(self) -> None:
        query = RunQuery(fields={"status": ACTIVE}, sort="started", descending=False, shard_groups=False)
        queue = page_runs(self.store, query, 0, QUEUE_LIMIT)
        self.post_message(self.Loaded(inventory(), gpu_holders(self.store), queue,
                                      count_runs(self.store, query)))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        gpus = self.query_one("#gpu-table", DataTable)
        gpus.clear()
        for gpu in message.gpus:
            used = gpu.memory_total - gpu.memory_free
            mine = holders_of(gpu, message.holders)
            held = ", ".join(f"{h.run_id[:8] if h.run_id else '?'} {h.job or ''}"
                             + (f" ({format_size(h.memory)})" if h.memory else "") for h in mine)
            util = "-" if gpu.utilization is None else f"{gpu.utilization}%"
            gpus.add_row(str(gpu.index), gpu.name, f"{format_size(used)} / {format_size(gpu.memory_total)}",
                         util, held or "free", key=gpu.uuid)
        title = self.query_one("#gpu-title", Static)
        title.update(f"GPUs: {len(message.gpus)}" if message.gpus else
                     "GPUs: none found (no NVML driver; MAYURI_FAKE_GPUS=2x16GiB shows fake ones)")
        self._fill_queue(message.queue, message.queued_total)

    def _fill_queue(self, rows: list[RunListRow], total: int) -> None:
        table = self.query_one("#queue-table", DataTable)
        keep = table.cursor_row
        table.clear()
        self.queue = {r.id: r for r in rows}
        for r in rows:
            table.add_row(r.id[:8], r.experiment, r.job, status_text(r.status), format_gpus(r.gpus),
                          format_time(r.started_at), r.user, format_time(r.created_at), key=r.id)
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))
        shown = f" (first {len(rows)})" if total > len(rows) else ""
        self.query_one("#queue-title", Static).update(f"queued and running runs: {total}{shown}")

    def current_run(self) -> RunListRow | None:
        table = self.query_one("#queue-table", DataTable)
        if not self.queue or table.cursor_row < 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return self.queue.get(str(key))

    @on(DataTable.RowSelected, "#queue-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        self.post_message(OpenRun(str(event.row_key.value)))
