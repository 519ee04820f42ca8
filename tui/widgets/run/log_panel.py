"""The logs tab of a run: the tail of stdout or stderr, followed while the run writes.

Files are read in thread workers from the offset reached so far, so a
50 MB log costs one tail read and then only what is new.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Log, Static

from mayuri.run_contract import log_file
from mayuri.tui.store_reading import ReadsStore

TAIL_BYTES = 64 * 1024


def read_from(path: Path, offset: int | None) -> tuple[str, int]:
    """Text of `path` from `offset` (None: the last TAIL_BYTES) and the new offset."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            start = max(0, size - TAIL_BYTES) if offset is None else min(offset, size)
            handle.seek(start)
            data = handle.read()
    except FileNotFoundError:
        return "", 0 if offset is None else offset
    return data.decode("utf-8", errors="replace"), start + len(data)


class LogPanel(ReadsStore, Vertical):
    """One stream of a run's output; `e` switches stream, `f` follows."""

    stream: reactive[str] = reactive("stdout")
    """Which file is shown: 'stdout' or 'stderr'."""
    following: reactive[bool] = reactive(True)
    """Whether new output is appended as it arrives."""

    @dataclass
    class Chunk(Message):
        stream: str
        text: str
        offset: int
        first: bool

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run_dir: Path | None = None
        self._offset: int | None = None
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="log-title")
        yield Log(id="log", highlight=False, auto_scroll=True)

    def on_mount(self) -> None:
        self._timer = self.set_interval(1.0, self._tick)

    def open(self, run_dir: str) -> None:
        """Show the logs in `run_dir` (known once the run's record is read)."""
        self.run_dir = Path(run_dir)
        self.watch_stream(self.stream)

    def watch_stream(self, stream: str) -> None:
        if not self.is_mounted or self.run_dir is None:
            return
        self._offset = None
        self.query_one(Log).clear()
        self._title()
        self.read_more(stream, None)

    def watch_following(self, following: bool) -> None:
        if self.is_mounted and self.run_dir is not None:
            self._title()

    def _title(self) -> None:
        assert self.run_dir is not None
        follow = "following" if self.following else "paused"
        self.query_one("#log-title", Static).update(
            f"{self.run_dir / (self.stream + '.log')}  ({follow}; e: stdout/stderr, f: follow)"
        )

    def _tick(self) -> None:
        if self.following and self._offset is not None and self.display:
            self.read_more(self.stream, self._offset)

    @work(thread=True, exclusive=True, group="log", exit_on_error=False)
    def read_more(self, stream: str, offset: int | None) -> None:
        assert self.run_dir is not None
        text, new_offset = read_from(log_file(self.run_dir, stream), offset)
        self.post_message(self.Chunk(stream, text, new_offset, offset is None))

    @on(Chunk)
    def _chunk(self, message: Chunk) -> None:
        if message.stream != self.stream:
            return
        self._offset = message.offset
        if message.text:
            self.query_one(Log).write(message.text)

    def toggle_stream(self) -> None:
        self.stream = "stderr" if self.stream == "stdout" else "stdout"

    def toggle_follow(self) -> None:
        self.following = not self.following
