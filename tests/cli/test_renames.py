"""Issue 15: renaming a job, upstream or downstream, reruns nothing, through the real CLI.

A downstream job names its upstreams (`depends_on`, `${mayuri.upstream.NAME.x}`),
but what it does depends on what they give it, not on what they are called:
the cache keys each upstream by its position in `depends_on`. Changing what
an upstream gives still reruns exactly the jobs that depend on it, and two
upstreams that trade names (and so trade the params they feed) are never
mistaken for each other. Runs recorded before, keyed by name, stay hits.
"""

from __future__ import annotations

import json
import re
import sqlite3

from mayuri.experiment.expand import base_hash
from mayuri.fingerprint import used_key
from mayuri.hashing import canonical_json
from tests.conftest import Project

# `make` leaves a file in its run folder; `fit` reads it (a traced read: only that file counts);
# `report` gathers every fit.
MAKE = """\
import sys, mayuri
folder = mayuri.current_run().dir
(folder / "data.txt").write_text("data-" + sys.argv[1])
mayuri.output("folder", str(folder))
"""
FIT = """\
import sys, mayuri
data = open(sys.argv[1] + "/data.txt").read()
mayuri.output("score", f"{data}/q={sys.argv[2]}")
"""
REPORT = """\
import sys, mayuri
mayuri.output("best", max(mayuri.params()["scores"]))
"""
PIPELINE = """\
name: renames
jobs:
  make:
    run: python make.py ${p}
    params: {p: 1}
    sweep: {p: [1, 2]}
    outputs: [folder]
  fit:
    run: python fit.py ${folder} ${q}
    params: {q: 1}
    sweep: {q: [1, 2]}
    depends_on: {make: {folder: folder}}
    outputs: [score]
  report:
    run: python report.py
    depends_on: {fit: {score: scores}}
    gather: true
    outputs: [best]
"""


def setup(project: Project, experiment: str = PIPELINE) -> None:
    project.write("make.py", MAKE)
    project.write("fit.py", FIT)
    project.write("report.py", REPORT)
    project.write("exp.yaml", experiment)


def rename(text: str, old: str, new: str) -> str:
    """The experiment with job `old` called `new`, in its key and wherever a depends_on names it."""
    return re.sub(rf"^  {old}:", f"  {new}:", text, flags=re.M).replace(f"{{{old}: {{", f"{{{new}: {{")


def counts(project: Project) -> int:
    return len(project.runs())


def test_renaming_any_job_of_a_swept_three_stage_pipeline_reruns_nothing(project: Project) -> None:
    setup(project)
    first = project.mayuri("run", "exp.yaml")
    assert first.returncode == 0, first.stderr
    assert counts(project) == 7  # 2 make, 4 fit, 1 report
    # The first stage renamed: its downstream fits are reused, and say under which name they knew it.
    renamed = rename(PIPELINE, "make", "prepare")
    project.write("exp.yaml", renamed)
    again = project.mayuri("run", "exp.yaml")
    assert again.returncode == 0, again.stderr
    assert counts(project) == 7, again.stderr
    assert "7 jobs: 7 cached" in again.stderr, again.stderr
    assert re.search(r"^fit\[q=1,prepare\.p=2\] +cached +\w+ cached \(run \w+, upstream prepare was make\)$",
                     again.stderr, re.M), again.stderr
    # The middle stage renamed too: the gathering job is reused.
    renamed = rename(renamed, "fit", "train")
    project.write("exp.yaml", renamed)
    third = project.mayuri("run", "exp.yaml")
    assert third.returncode == 0 and counts(project) == 7, third.stderr
    assert re.search(r"^report +cached +\w+ cached \(run \w+, upstream train was fit\)$", third.stderr, re.M), \
        third.stderr
    # `show --why` says that upstreams count by position and results, and which job each was.
    report = next(r for r in project.runs() if r["job"] == "report")
    why = project.show(report["id"], "--why")
    assert list(why["upstream"]) == ["#0"] and why["upstream_names"] == {"#0": "fit"}
    assert why["fingerprint"] == why["recomputed_now"]
    text = project.mayuri("show", report["id"], "--why")
    assert "upstream results (by position in depends_on, not by name)" in text.stdout, text.stdout
    assert "#0 (fit)" in text.stdout and "${mayuri.upstream.#0.score}" in text.stdout, text.stdout
    fit = next(r for r in project.runs() if r["job"] == "fit")
    fit_why = project.show(fit["id"], "--why")
    assert fit_why["fingerprint"] == fit_why["recomputed_now"]  # its traced reads are part of the key
    # What the first stage gives changes for one sweep point: exactly its fits and the report rerun.
    project.write("exp.yaml", renamed.replace("sweep: {p: [1, 2]}", "sweep: {p: [1, 3]}"))
    changed = project.mayuri("run", "exp.yaml")
    assert changed.returncode == 0, changed.stderr
    assert counts(project) == 7 + 1 + 2 + 1, changed.stderr
    assert re.search(r"^train\[q=2,prepare\.p=1\] +cached ", changed.stderr, re.M), changed.stderr
    assert re.search(r"^report +succeeded +\w+ upstream train changed$", changed.stderr, re.M), changed.stderr


def test_a_file_an_upstream_left_changing_reruns_its_readers_under_a_new_name(project: Project) -> None:
    setup(project)
    assert project.mayuri("run", "exp.yaml", "--only", "fit").returncode == 0
    project.write("exp.yaml", rename(PIPELINE, "make", "prepare"))
    project.write("make.py", MAKE.replace('"data-"', '"DATA-"'))
    changed = project.mayuri("run", "exp.yaml", "--only", "fit")
    assert changed.returncode == 0, changed.stderr
    # The upstream files the fits read are checked in the renamed upstream's new folders, and named so.
    assert "upstream prepare: data.txt changed" in changed.stderr, changed.stderr
    assert counts(project) == 6 + 6, changed.stderr


TWO = """\
name: two
jobs:
  a:
    run: python -c "import mayuri; mayuri.output('x', 'from-a')"
    outputs: [x]
  b:
    run: python -c "import mayuri; mayuri.output('x', 'from-b')"
    outputs: [x]
  join:
    run: python -c "import mayuri, sys; mayuri.output('got', sys.argv[1:])" ${u} ${v}
    depends_on: {a: {x: u}, b: {x: v}}
    outputs: [got]
"""


def test_upstreams_that_trade_names_are_not_mistaken_for_each_other(project: Project) -> None:
    project.write("exp.yaml", TWO)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    # The two upstream jobs trade names: `u` now gets what used to be b's output. No false hit.
    swapped = TWO.replace("from-a", "TMP").replace("from-b", "from-a").replace("TMP", "from-b")
    project.write("exp.yaml", swapped)
    again = project.mayuri("run", "exp.yaml")
    assert again.returncode == 0, again.stderr
    joins = [r for r in project.runs() if r["job"] == "join"]
    assert len(joins) == 2, again.stderr
    newest = max(joins, key=lambda r: r["started"])
    assert project.show(newest["id"])["outputs"]["got"] == ["from-b", "from-a"]
    # Listing the same upstreams in another order is a rerun too (a needless one, never a false hit).
    project.write("exp.yaml", TWO.replace("{a: {x: u}, b: {x: v}}", "{b: {x: v}, a: {x: u}}"))
    third = project.mayuri("run", "exp.yaml")
    assert third.returncode == 0, third.stderr
    outputs = sorted(json.dumps(project.show(r["id"])["outputs"]["got"]) for r in project.runs() if r["job"] == "join")
    assert json.dumps(["from-a", "from-b"]) in outputs


def test_runs_recorded_before_upstreams_were_keyed_by_position_stay_hits(project: Project) -> None:
    setup(project)
    project.write("two.yaml", TWO)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    assert project.mayuri("run", "two.yaml").returncode == 0
    _as_before_migration_0018(project)
    same = project.mayuri("run", "exp.yaml")
    assert same.returncode == 0, same.stderr
    assert "7 jobs: 7 cached" in same.stderr and counts(project) == 10, same.stderr
    # A change is still explained against them, and still reruns what it must.
    changed = project.mayuri("run", "exp.yaml", "fit.q=1,3", "--dry-run")
    assert changed.returncode == 0, changed.stderr
    assert "param q 1 -> 3" in changed.stdout or "param q 2 -> 3" in changed.stdout, changed.stdout
    # Migration 0018 placed the runs with one upstream: a rename is no rerun for them either.
    project.write("exp.yaml", rename(rename(PIPELINE, "make", "prepare"), "fit", "train"))
    renamed = project.mayuri("run", "exp.yaml")
    assert renamed.returncode == 0 and "7 jobs: 7 cached" in renamed.stderr, renamed.stderr
    # A run with two upstreams keeps its keys by name (their order is not recorded): found by them.
    two = project.mayuri("run", "two.yaml")
    assert two.returncode == 0 and "3 jobs: 3 cached" in two.stderr, two.stderr
    join = next(r for r in project.runs() if r["job"] == "join")
    assert sorted(project.show(join["id"], "--why")["upstream"]) == ["a", "b"]
    # Another value reruns what it must: the new sweep point's fits and the report.
    more = project.mayuri("run", "exp.yaml", "train.q=1,3")
    assert more.returncode == 0 and counts(project) == 10 + 2 + 1, more.stderr


def _as_before_migration_0018(project: Project) -> None:
    """Turn the store back into what Mayuri recorded before upstreams were keyed by position: no list of
    upstreams in the configs, every key naming them, and migration 0018 not applied yet."""
    conn = sqlite3.connect(project.db)
    try:
        rows = conn.execute("SELECT id, job, config, upstream, params_used, closure_info FROM run").fetchall()
        for rid, job, config_text, upstream, used, info_text in rows:
            config = json.loads(config_text)
            name = {f"#{i}": n for i, n in enumerate(config.pop("upstream", []))}
            name["shards"] = job
            info = json.loads(info_text) if info_text else {}
            if "upstream_reads" in info:
                info["upstream_reads"] = [[name.get(r[0], r[0]), *r[1:]] for r in info["upstream_reads"]]
            conn.execute(
                "UPDATE run SET config = ?, base_hash = ?, used_key = ?, upstream = ?, closure_info = ?, "
                "fingerprint_version = min(fingerprint_version, 2) WHERE id = ?",
                (canonical_json(config), base_hash(config),
                 used_key(json.loads(used) if used else None, config["params"]),
                 canonical_json({name.get(k, k): v for k, v in json.loads(upstream).items()}),
                 json.dumps(info) if info_text else None, rid))
        conn.execute("DELETE FROM schema_migration WHERE name LIKE '0018%'")
        names = [row[0] for row in conn.execute("SELECT name FROM schema_migration")]
        conn.execute(f"PRAGMA user_version = {max(int(n[:4]) for n in names)}")
        conn.commit()
    finally:
        conn.close()


SHARDED = """\
name: sharded
jobs:
  prep:
    run: python -c "import mayuri; mayuri.output('b', 1.0)"
    outputs: [b]
  ev:
    run: python -c "import mayuri, sys; mayuri.output('acc', int(sys.argv[1]) + float(sys.argv[2]))" ${mayuri.shard} ${b}
    depends_on: {prep: {b: b}}
    shards: 3
    reduce: {acc: mean}
  rep:
    run: python -c "print(${a})"
    depends_on: {ev: {acc: a}}
"""


def test_renaming_a_sharded_job_and_its_upstream_keeps_the_shards_and_the_reduction(project: Project) -> None:
    project.write("exp.yaml", SHARDED)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    project.write("exp.yaml", rename(rename(SHARDED, "prep", "prepare"), "ev", "evaluate"))
    again = project.mayuri("run", "exp.yaml")
    assert again.returncode == 0, again.stderr
    # The reduction's upstreams are its own shards, whatever the job is called.
    assert "6 jobs: 6 cached" in again.stderr and counts(project) == 6, again.stderr
