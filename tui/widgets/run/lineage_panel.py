"""The lineage tab of a run: upstream and downstream runs as a tree; enter jumps to one."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from mayuri.store.lineage_queries import LineageNode, lineage_tree
from mayuri.tui.formatting import status_style
from mayuri.tui.messages import OpenRun
from mayuri.tui.store_reading import ReadsStore


def _label(node: LineageNode) -> Text:
    text = Text(f"{node.name}: ", style="dim")
    text.append(f"{node.experiment}/{node.job} ")
    text.append(node.run_id[:8], style="bold")
    text.append(f" {node.status}", style=status_style(node.status))
    return text


class LineagePanel(ReadsStore, Tree[str]):
    """Two branches, upstream and downstream, each run a node whose data is its id."""

    @dataclass
    class Loaded(Message):
        up: list[LineageNode]
        down: list[LineageNode]

    def __init__(self, run_id: str, *, id: str | None = None) -> None:
        super().__init__(f"run {run_id[:8]}", data=run_id, id=id)
        self.run_id = run_id

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="lineage", exit_on_error=False)
    def load(self) -> None:
        up = lineage_tree(self.store, self.run_id, "up")
        down = lineage_tree(self.store, self.run_id, "down")
        self.post_message(self.Loaded(up, down))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.clear()
        for title, nodes in (("upstream (what it used)", message.up),
                             ("downstream (what used it)", message.down)):
            branch = self.root.add(f"{title}: {len(nodes)}", expand=True)
            self._add(branch, nodes)
        self.root.expand()

    def _add(self, parent: TreeNode[str], nodes: list[LineageNode]) -> None:
        for node in nodes:
            if node.children or node.more:
                child = parent.add(_label(node), data=node.run_id, expand=True)
                self._add(child, node.children)
                if node.more:
                    child.add_leaf(f"… {node.more} more", data=None)
            else:
                parent.add_leaf(_label(node), data=node.run_id)

    @on(Tree.NodeSelected)
    def _jump(self, event: Tree.NodeSelected[str]) -> None:
        run_id = event.node.data
        if run_id and run_id != self.run_id:
            event.stop()
            self.post_message(OpenRun(run_id))
