"""Random edits, renames, replacements, link changes and touches against a model: never a stale hit.

The job prints what it read through a link and a plain file; the model says
what a fresh run would print. Whenever `mayuri run` answers `cached`, the
cached run's output must be that.
"""

from __future__ import annotations

import os
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Project

MAIN = """
import mayuri
mayuri.output("seen", open("data/current.txt").read() + "|" + open("data/b.txt").read())
"""
EXP = """
name: prop
jobs:
  job:
    run: python main.py
    outputs: [seen]
"""

operations = st.one_of(
    st.tuples(st.just("edit"), st.sampled_from(["v1.txt", "v2.txt", "b.txt"]), st.sampled_from(["x", "y"])),
    st.tuples(st.just("link"), st.sampled_from(["v1.txt", "v2.txt"]), st.just("")),
    st.tuples(st.just("swap"), st.just(""), st.just("")),  # mv v1.txt <-> v2.txt
    st.tuples(st.just("touch"), st.sampled_from(["v1.txt", "v2.txt", "b.txt"]), st.just("")),
    # A new version moved over the old one with the old one's mtime (rsync, tar, mv of a staged file).
    st.tuples(st.just("replace"), st.sampled_from(["v1.txt", "v2.txt", "b.txt"]), st.sampled_from(["x", "yy"])),
)


def expected(root: str) -> str:
    data = os.path.join(root, "data")
    return open(os.path.join(data, "current.txt")).read() + "|" + open(os.path.join(data, "b.txt")).read()


def apply(root: str, op: tuple[str, str, str]) -> None:
    data = os.path.join(root, "data")
    kind, name, value = op
    if kind == "edit":
        with open(os.path.join(data, name), "w") as f:
            f.write(value)
    elif kind == "link":
        os.remove(os.path.join(data, "current.txt"))
        os.symlink(name, os.path.join(data, "current.txt"))
    elif kind == "swap":
        os.rename(os.path.join(data, "v1.txt"), os.path.join(data, "tmp"))
        os.rename(os.path.join(data, "v2.txt"), os.path.join(data, "v1.txt"))
        os.rename(os.path.join(data, "tmp"), os.path.join(data, "v2.txt"))
    elif kind == "replace":
        target = os.path.join(data, name)
        before = os.stat(target)
        with open(target + ".staged", "w") as f:
            f.write(value)
        os.utime(target + ".staged", ns=(before.st_atime_ns, before.st_mtime_ns))
        os.rename(target + ".staged", target)
    else:
        later = time.time() + 5
        os.utime(os.path.join(data, name), (later, later))


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operations, min_size=1, max_size=3), st.sampled_from(["1", "0"]))
def test_no_false_hit(project: Project, ops: list[tuple[str, str, str]], tracer: str) -> None:
    # With the C tracer and with the Python audit hook alone (MAYURI_TRACER=0).
    root = str(project.root)
    data = os.path.join(root, "data")
    os.makedirs(data, exist_ok=True)
    for name in ("v1.txt", "v2.txt", "b.txt", "current.txt"):
        if os.path.lexists(os.path.join(data, name)):
            os.remove(os.path.join(data, name))
    for name, text in (("v1.txt", "one"), ("v2.txt", "two"), ("b.txt", "b")):
        with open(os.path.join(data, name), "w") as f:
            f.write(text)
    os.symlink("v1.txt", os.path.join(data, "current.txt"))
    project.write("main.py", MAIN)
    project.write("exp.yaml", EXP)
    for op in [("touch", "b.txt", ""), *ops]:
        apply(root, op)
        done = project.mayuri("run", "exp.yaml", env={"MAYURI_TRACER": tracer})
        assert done.returncode == 0, done.stderr
        latest = project.runs()[0] if "cached (run" not in done.stderr else None
        run_id = latest["id"] if latest else done.stderr.split("cached (run ")[1][:8]
        seen = project.show(run_id)["outputs"]["seen"]
        assert seen == expected(root), (op, done.stderr)
