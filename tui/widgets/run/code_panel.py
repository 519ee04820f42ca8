"""The code tab of a run: its closure with hashes, a file's content from blobs/, a diff with another run.

Code files are kept in the store's blobs (inputs are only hashed), so the
content of any run's code can be shown and diffed long after the working
tree moved on. Reads happen in thread workers.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from mayuri.hashing import LINK_MARK
from mayuri.store.blobs import blob_path
from mayuri.store.queries import closures, get_run
from mayuri.store.records import ClosureRow
from mayuri.tui.store_reading import ReadsStore
from mayuri.units import format_size

MAX_SHOWN = 512 * 1024


def closure_changes(mine: list[ClosureRow], other: list[ClosureRow]) -> dict[str, str]:
    """Per path: 'same', 'changed', 'added' (only in mine) or 'removed' (only in the other run)."""
    theirs = {c.path: c.sha512 for c in other}
    result = {c.path: ("added" if c.path not in theirs else
                       "same" if theirs[c.path] == c.sha512 else "changed") for c in mine}
    for path in theirs:
        result.setdefault(path, "removed")
    return result


class CodePanel(ReadsStore, Vertical):
    """Closure files of one run; enter shows a file, or its diff when another run is given."""

    @dataclass
    class Compared(Message):
        other_id: str
        other: list[ClosureRow]

    @dataclass
    class FileLoaded(Message):
        path: str
        body: Syntax | Text

    def __init__(self, run_id: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run_id = run_id
        self.closure: list[ClosureRow] = []
        self.other_id: str | None = None
        self.other: dict[str, ClosureRow] = {}

    def compose(self) -> ComposeResult:
        yield Input(placeholder="diff against run (id or prefix), enter to compare", id="diff-against")
        with Horizontal():
            yield DataTable(id="closure", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="code-view"):
                yield Static("Select a file to see its content.", id="code")

    def show(self, closure: list[ClosureRow], previous: str | None) -> None:
        self.closure = closure
        if previous and not self.query_one("#diff-against", Input).value:
            self.query_one("#diff-against", Input).value = previous[:8]
        self._fill()

    def _fill(self) -> None:
        table = self.query_one("#closure", DataTable)
        table.clear(columns=True)
        changes = closure_changes(self.closure, list(self.other.values())) if self.other_id else {}
        versus = [f"vs {self.other_id[:8]}"] if self.other_id else []
        table.add_columns("role", "path", "size", "sha512", *versus)
        for c in self.closure:
            extra = [changes[c.path]] if changes else []
            # A link (role "link") shows where it points; products (role "product") are files the job made.
            digest = c.sha512.replace(LINK_MARK, "-> ", 1) if c.kind == "link" else c.sha512[:16]
            table.add_row(c.role, c.path, format_size(c.size), digest, *extra, key=c.path)
        for path, change in changes.items():
            if change == "removed":
                gone = self.other[path]
                table.add_row(gone.role, path, format_size(gone.size), gone.sha512[:16], "removed", key=path)

    @on(Input.Submitted, "#diff-against")
    def _diff_against(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.load_other(event.value.strip())

    @work(thread=True, exclusive=True, group="code-other", exit_on_error=False)
    def load_other(self, ref: str) -> None:
        other = get_run(self.store, ref)
        self.post_message(self.Compared(other.id, closures(self.store, [other.id]).get(other.id, [])))

    @on(Compared)
    def _compared(self, message: Compared) -> None:
        self.other_id = message.other_id
        self.other = {c.path: c for c in message.other}
        self._fill()

    @on(DataTable.RowSelected, "#closure")
    def _file_chosen(self, event: DataTable.RowSelected) -> None:
        path = str(event.row_key.value)
        mine = next((c for c in self.closure if c.path == path), None)
        self.load_file(path, mine, self.other.get(path))

    @work(thread=True, exclusive=True, group="code-file", exit_on_error=False)
    def load_file(self, path: str, mine: ClosureRow | None, theirs: ClosureRow | None) -> None:
        new = self._content(mine)
        if theirs is not None and mine is not None and theirs.sha512 != mine.sha512:
            old = self._content(theirs)
            if new is None or old is None:
                body: Syntax | Text = Text("The content of one side was not kept (only code files are).")
            else:
                diff = difflib.unified_diff(old.splitlines(), new.splitlines(), f"{self.other_id or ''}/{path}",
                                            f"{self.run_id[:8]}/{path}", lineterm="")
                body = Syntax("\n".join(diff) or "(no difference in text)", "diff", word_wrap=False)
        elif new is None:
            body = Text(f"{path}: content not kept in blobs/ (inputs are only hashed; code files are kept).")
        else:
            body = Syntax(new, Syntax.guess_lexer(path, new), line_numbers=True, word_wrap=False)
        self.post_message(self.FileLoaded(path, body))

    def _content(self, entry: ClosureRow | None) -> str | None:
        if entry is None or entry.kind != "file":
            return None
        blob = blob_path(self.store, entry.sha512)
        try:
            with open(blob, "rb") as handle:
                return handle.read(MAX_SHOWN).decode("utf-8", errors="replace")
        except OSError:
            return None

    @on(FileLoaded)
    def _file_loaded(self, message: FileLoaded) -> None:
        self.query_one("#code", Static).update(message.body)
