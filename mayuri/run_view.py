"""What `mayuri run` shows as it goes: a live table at a terminal, one plain line per event elsewhere.

Away from a terminal nothing here loads Rich: a cached run printed to a file
or a pipe pays only for its own lines (see `terminal.py`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mayuri.scheduler.events import JobEvent
from mayuri.terminal import LazyConsole, plain
from mayuri.units import format_duration

if TYPE_CHECKING:
    from rich.console import Group
    from rich.live import Live

    from mayuri.scheduler.plan import Outcome

# Beyond this many jobs the live view shows the active ones and counts the rest.
LIVE_ROWS = 30
QUIET_STATES = ("cached", "succeeded", "pending")


class RunView:
    """The scheduler's reporter for `mayuri run`.

    Events only update a dict; the live table is built when Rich draws (a few
    times a second), so a plan of thousands of jobs costs the scheduler nothing.
    """

    def __init__(self, console: LazyConsole, keys: Sequence[str]) -> None:
        self.console = console
        self.rows: dict[str, JobEvent] = {key: JobEvent(key, "pending") for key in keys}
        self.started: dict[str, float] = {}
        self.live: Live | None = None
        if not plain(console.stream) and console.is_terminal:
            from rich.live import Live

            self.live = Live(self, console=console.console, refresh_per_second=4, transient=False)

    def __enter__(self) -> RunView:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.refresh()
            self.live.__exit__(None, None, None)

    def __rich__(self) -> Group:
        return self._table()

    def _table(self) -> Group:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from mayuri.render import short_gpu, status_text

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in ("job", "status", "run", "gpu", "attempt", "time", "why"):
            table.add_column(column, overflow="fold")
        rows = list(self.rows.items())
        hidden: dict[str, int] = {}
        if len(rows) > LIVE_ROWS:
            shown = [(k, e) for k, e in rows if e.state not in QUIET_STATES]
            if len(shown) > LIVE_ROWS:
                shown = shown[-LIVE_ROWS:]
            keep = {k for k, _ in shown}
            for key, event in rows:
                if key not in keep:
                    hidden[event.state] = hidden.get(event.state, 0) + 1
            rows = shown
        now = time.monotonic()
        for key, event in rows:
            elapsed = event.duration
            if event.state == "running" and key in self.started:
                elapsed = now - self.started[key]
            table.add_row(
                Text(key), status_text(event.state), (event.run_id or "")[:8],
                Text(",".join(short_gpu(g) for g in event.gpus)), str(event.attempt or ""),
                format_duration(elapsed) if elapsed is not None else "", Text(event.reason),
            )
        if not hidden:
            return Group(table)
        more = ", ".join(f"{n} {state}" for state, n in sorted(hidden.items()))
        return Group(table, Text(f"... and {more}", style="dim"))

    def event(self, event: JobEvent) -> None:
        if event.state == "running":
            self.started[event.key] = time.monotonic()
        self.rows[event.key] = event
        if self.live is not None or event.state in ("ready", "pending"):
            return
        # Without the live table the output is no terminal, where Rich would drop the styles.
        where = f" gpu {','.join(event.gpus)}" if event.gpus else ""
        attempt = f" attempt {event.attempt}" if event.attempt > 1 else ""
        run = (event.run_id or "")[:8] + " " if event.run_id else ""
        self.console.stream.write(f"{event.key:<24} {event.state:<9} {run}{event.reason}{where}{attempt}\n")


def print_summary(console: LazyConsole, outcome: Outcome, elapsed: float) -> None:
    """The closing line of `mayuri run`: how many jobs ended how, green when all went well."""
    counts: dict[str, int] = {}
    for slot in outcome.slots:
        counts[slot.state] = counts.get(slot.state, 0) + 1
    parts = [f"{n} {state}" for state, n in sorted(counts.items())]
    total = len(outcome.slots)
    text = f"{total} job{'s' if total != 1 else ''}: " + ", ".join(parts) + f" in {format_duration(elapsed)}"
    if outcome.interrupted:
        text += " (interrupted)"
    if plain(console.stream):
        console.stream.write(text + "\n")
        return
    from rich.text import Text

    console.print(Text(text, style="green" if outcome.ok else "red"), highlight=False, soft_wrap=True)
