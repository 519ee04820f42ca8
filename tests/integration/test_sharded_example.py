"""examples/sharded end to end: the adder evaluated over 8 shards of held-out files, then one file edited.

The adder is trained briefly (one learning rate, few steps) to keep the test
quick: what is checked is how the shards run, cache and reduce, not the
model's accuracy.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import Project

pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_sharded_example_reduces_eight_shards_and_reruns_one_after_an_edit(project: Project) -> None:
    for name in ("addition", "sharded"):
        shutil.copytree(EXAMPLES / name, project.root / "examples" / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    args = ("test", "examples/sharded/exp.yaml", "steps=20", "lr=0.003")
    first = project.mayuri(*args, timeout=600)
    assert first.returncode in (0, 1), first.stdout + first.stderr
    assert "heldout: 8 shards" in first.stdout
    assert re.search(r"heldout\s+n == 1000\s+1000\s+pass", first.stdout), first.stdout
    shards = [r for r in project.runs("-j", "heldout")]
    assert len(shards) == 9

    path = project.root / "examples/sharded/heldout/sums-07.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(["1+1=2", *lines[1:]]) + "\n")
    again = project.mayuri(*args, timeout=600)
    assert again.returncode in (0, 1), again.stdout + again.stderr
    assert again.stderr.count(" running ") == 1, again.stderr
    assert "examples/sharded/heldout/sums-07.txt changed" in again.stderr
    assert len(project.runs("-j", "heldout")) == 11  # one shard and the reduction
