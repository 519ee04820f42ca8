"""Read-only lineage trees for the dashboard: the runs upstream or downstream of one run.

One step of lineage is one query per node; the walk stops at a depth and a
fan-out limit so that a data run feeding thousands of trainings stays quick.
Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mayuri.store.db import Store

_STEP = {
    "up": ("lineage.parent_id", "lineage.child_id", "lineage.name"),
    "down": ("lineage.child_id", "lineage.parent_id", "run.created_at"),
}


@dataclass
class LineageNode:
    """A run in a lineage tree, named by the input that links it to its neighbour."""

    name: str
    run_id: str
    experiment: str
    job: str
    status: str
    children: list[LineageNode] = field(default_factory=list)
    more: int = 0
    """Neighbours left out past the fan-out limit."""


def lineage_tree(
    store: Store,
    run_id: str,
    direction: Literal["up", "down"],
    *,
    depth: int = 6,
    fanout: int = 50,
) -> list[LineageNode]:
    """The runs `direction` of `run_id`, each with its own neighbours, `depth` steps deep."""
    other, this, order = _STEP[direction]
    sql = (
        f"SELECT lineage.name, run.id, experiment.name, run.job, run.status FROM lineage "
        f"JOIN run ON run.id = {other} JOIN experiment ON experiment.id = run.experiment_id "
        f"WHERE {this} = ? ORDER BY {order} LIMIT ?"
    )
    count_sql = f"SELECT count(*) FROM lineage WHERE {this} = ?"
    seen = {run_id}

    def step(node_id: str, level: int) -> tuple[list[LineageNode], int]:
        rows = store.db.execute_sql(sql, (node_id, fanout + 1)).fetchall()
        more = 0
        if len(rows) > fanout:
            total = store.db.execute_sql(count_sql, (node_id,)).fetchone()[0]
            rows, more = rows[:fanout], int(total) - fanout
        nodes = []
        for name, rid, experiment, job, status in rows:
            node = LineageNode(name, rid, experiment, job, status)
            # A run reached twice (diamond-shaped pipelines) is expanded once.
            if rid not in seen and level + 1 < depth:
                seen.add(rid)
                node.children, node.more = step(rid, level + 1)
            nodes.append(node)
        return nodes, more

    return step(run_id, 0)[0]
