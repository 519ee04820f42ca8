"""Sharded jobs through the real CLI: shards cached one by one, reductions, failures, retries, bad input."""

from __future__ import annotations

import json
import re
import statistics

from tests.conftest import Project

# Shard i of 8 gets items i*3 .. i*3+2 of 0..23 (shard_of), outputs their sum and count,
# logs a metric, and reports an error list.
EVAL = """\
import mayuri
index, count = mayuri.shard()
items = list(mayuri.shard_of(list(range(24))))
mayuri.output("total", sum(items))
mayuri.output("n", len(items))
mayuri.output("mean", sum(items) / len(items))
mayuri.output("errors", [f"e{index}"])
mayuri.output("index", index)
mayuri.output("seen", 1)
mayuri.log(loss=float(index) / 10)
"""

EIGHT = """\
tests:
  score:
    run: python eval.py --shard ${mayuri.shard} --of ${mayuri.shards}
    shards: 8
    outputs: [total, n, mean, errors, index, seen]
    reduce:
      total: sum
      n: sum
      mean: {weighted_mean: n}
      errors: concat
      index: max
      seen: count
      loss: {metric: mean}
    expect: {total: "== 276", n: "== 24", mean: ">= 11"}
"""


def launched(project: Project, before: set[str], job: str) -> list[dict]:
    """The runs of `job` made since `before` (ids), newest first."""
    return [r for r in project.runs("-j", job) if r["id"] not in before]


def ids(project: Project) -> set[str]:
    return {r["id"] for r in project.runs()}


def reduction_of(project: Project, runs: list[dict]) -> dict:
    """The one run among `runs` that has the shards as lineage parents."""
    shown = [project.show(r["id"]) for r in runs]
    found = [s for s in shown if len(s["lineage"]["upstream"]) > 1]
    assert len(found) == 1, [s["lineage"] for s in shown]
    return found[0]


def test_eight_shards_reduce_every_kind_and_expect_judges_the_reduced_values(project: Project) -> None:
    project.write("eval.py", EVAL)
    project.write("exp.yaml", EIGHT)
    done = project.mayuri("test", "exp.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    runs = project.runs("-j", "score")
    assert len(runs) == 9  # 8 shards and their reduction
    reduced = reduction_of(project, runs)
    out = reduced["outputs"]
    assert out["total"] == 276 and out["n"] == 24
    assert out["errors"] == [f"e{i}" for i in range(8)]
    assert out["index"] == 7 and out["seen"] == 8
    assert abs(out["loss"] - statistics.mean(i / 10 for i in range(8))) < 1e-12
    # Every shard has 3 items here, so the weighted mean is the plain mean of 0..23.
    assert out["mean"] == 11.5
    assert sorted(p["name"] for p in reduced["lineage"]["upstream"]) == [f"score[{i}]" for i in range(8)]
    # Per-shard values and the reduced one are printed.
    assert "score: 8 shards" in done.stdout and re.search(r"reduced\s+succeeded\s+276\s+24", done.stdout)
    # A second run is answered by the cache, shard by shard and the reduction too.
    again = project.mayuri("test", "exp.yaml")
    assert again.returncode == 0 and len(project.runs("-j", "score")) == 9


def test_weighted_mean_against_a_hand_computation(project: Project) -> None:
    # 10 items over 4 shards: sizes 3, 3, 2, 2; each shard's accuracy is index / 4.
    project.write("eval.py", """\
        import mayuri
        index, count = mayuri.shard()
        part = mayuri.shard_of("abcdefghij")
        mayuri.output("accuracy", index / 4)
        mayuri.output("n", len(part))
    """)
    project.write("exp.yaml", """\
        tests:
          acc:
            run: python eval.py
            shards: 4
            outputs: [accuracy, n]
            reduce: {accuracy: {weighted_mean: n}, n: sum}
            expect: {accuracy: "< 0.5"}
    """)
    done = project.mayuri("test", "exp.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    out = reduction_of(project, project.runs("-j", "acc"))["outputs"]
    by_hand = (3 * 0 + 3 * 0.25 + 2 * 0.5 + 2 * 0.75) / 10
    assert out == {"accuracy": by_hand, "n": 10}

    # Another reduction of the same shards: computed from the cached shards, no process launched.
    before = ids(project)
    (project.root / "exp.yaml").write_text((project.root / "exp.yaml").read_text().replace("n: sum", "n: max"))
    again = project.mayuri("test", "exp.yaml")
    assert again.returncode == 0, again.stderr
    new = launched(project, before, "acc")
    assert len(new) == 1 and " running " not in again.stderr
    assert project.show(new[0]["id"])["outputs"] == {"accuracy": by_hand, "n": 3}


FILES = """\
import json, mayuri
total = 0
for path in mayuri.shard_files():
    total += sum(json.loads(line)["x"] for line in path.read_text().splitlines())
mayuri.output("total", total)
mayuri.output("files", len(mayuri.shard_files()))
"""


def test_editing_one_data_file_reruns_exactly_one_shard(project: Project) -> None:
    project.write("eval.py", FILES)
    for i in range(16):
        project.write(f"data/part{i:02d}.jsonl", json.dumps({"x": i}) + "\n")
    project.write("exp.yaml", """\
        jobs:
          total:
            run: python eval.py
            shards: {files: "data/*.jsonl", count: 8}
            outputs: [total, files]
            reduce: {total: sum, files: sum}
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    assert len(project.runs("-j", "total")) == 9
    assert reduction_of(project, project.runs("-j", "total"))["outputs"] == {"total": 120, "files": 16}

    before = ids(project)
    project.write("data/part05.jsonl", json.dumps({"x": 105}) + "\n")
    plan = project.mayuri("run", "exp.yaml", "--dry-run")
    assert plan.returncode == 0 and "9 jobs: 7 cached, 2 will run" in plan.stdout, plan.stdout
    again = project.mayuri("run", "exp.yaml")
    assert again.returncode == 0, again.stderr
    new = launched(project, before, "total")
    assert len(new) == 2, again.stderr  # one shard and the reduction
    assert again.stderr.count(" running ") == 1
    assert "data/part05.jsonl changed" in again.stderr
    assert reduction_of(project, new)["outputs"]["total"] == 220

    # A new file goes to one shard: only that shard's share changed.
    before = ids(project)
    project.write("data/part99.jsonl", json.dumps({"x": 1}) + "\n")
    third = project.mayuri("run", "exp.yaml")
    assert third.returncode == 0, third.stderr
    assert len(launched(project, before, "total")) == 2, third.stderr
    assert re.search(r"total\[shard=\d\]\s+running\s+\w+ files of shard \d changed \(\+data/part99.jsonl\)",
                     third.stderr), third.stderr


def test_a_shard_that_fails_twice_then_succeeds_is_retried_after_the_delay(project: Project) -> None:
    project.write("eval.py", """\
        import os, sys, mayuri
        index, _ = mayuri.shard()
        if index == 2 and int(os.environ["MAYURI_ATTEMPT"]) < 3:
            sys.exit("flaky")
        mayuri.output("ok", 1)
    """)
    project.write("exp.yaml", """\
        jobs:
          flaky:
            run: python eval.py
            shards: 4
            retry: {failed: 2, delay: 0.05s}
            reduce: {ok: sum}
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    assert "retry 1 of 2 in 0.05s" in done.stderr and "retry 2 of 2" in done.stderr
    runs = project.runs("-j", "flaky")
    assert len(runs) == 5 and all(r["status"] == "succeeded" for r in runs)
    assert reduction_of(project, runs)["outputs"] == {"ok": 4}
    attempts = max((project.show(r["id"])["attempts"] for r in runs), key=len)
    assert [a["status"] for a in attempts] == ["failed", "failed", "succeeded"]
    # Each retry started at least the delay after the attempt before it ended.
    assert all(later["started_at"] - earlier["ended_at"] >= 0.05
               for earlier, later in zip(attempts, attempts[1:], strict=False))


def test_a_shard_that_always_fails_fails_the_job_keeps_the_others_and_reruns_alone(project: Project) -> None:
    project.write("eval.py", """\
        import sys, mayuri
        index, _ = mayuri.shard()
        if index in (3, 7) and open("verdict.txt").read().strip() == "fail":
            sys.exit(f"shard {index} is broken")
        mayuri.output("ok", 1)
    """)
    project.write("verdict.txt", "fail\n")
    project.write("exp.yaml", """\
        jobs:
          ev:
            run: python eval.py
            shards: 8
            retry: {failed: 1, delay: 0.01s}
            reduce: {ok: sum}
          after:
            run: python -c "print(${n})"
            depends_on: {ev: {ok: n}}
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1
    assert "2 of 8 shards failed: 3, 7" in done.stderr
    # Why each one failed: the scheduler's reason and the last line it wrote to stderr.
    assert re.search(r"\(shard 3: exited with code 1.*?: shard 3 is broken; shard 7: .*: shard 7 is broken\)",
                     done.stderr), done.stderr
    assert re.search(r"after\s+skipped", done.stderr)
    runs = project.runs("-j", "ev")
    assert len(runs) == 8  # no reduction run: the job failed
    assert sorted(r["status"] for r in runs).count("succeeded") == 6
    # `show` gathers the shards of the job: any shard shows the group's progress.
    shown = project.show(runs[0]["id"])
    assert shown["shards"]["count"] == 8 and shown["shards"]["done"] == 6
    text = project.mayuri("show", runs[0]["id"]).stdout
    assert "6 of 8 done · failed: 3, 7" in text

    # The next run redoes only the two failed shards.
    before = ids(project)
    rerun = project.mayuri("run", "exp.yaml")
    assert rerun.returncode == 1
    assert len(launched(project, before, "ev")) == 2

    project.write("verdict.txt", "pass\n")
    before = ids(project)
    fixed = project.mayuri("run", "exp.yaml")
    assert fixed.returncode == 0, fixed.stderr
    new = launched(project, before, "ev")
    assert len(new) == 3  # shards 3 and 7, and the reduction
    assert reduction_of(project, new)["outputs"] == {"ok": 8}
    assert len(launched(project, before, "after")) == 1


def test_downstream_gets_reduced_values_and_a_sweep_shards_every_instance(project: Project) -> None:
    project.write("eval.py", """\
        import mayuri
        index, count = mayuri.shard()
        mayuri.output("score", mayuri.params()["scale"] * (index + 1))
    """)
    project.write("exp.yaml", """\
        jobs:
          ev:
            run: python eval.py ${scale}
            params: {scale: 1}
            sweep: {scale: [1, 10]}
            shards: 3
            outputs: [score]
            reduce: {score: sum}
          report:
            run: python -c "import mayuri; mayuri.output('got', ${total})"
            depends_on: {ev: {score: total}}
            outputs: [got]
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    assert len(project.runs("-j", "ev")) == 8  # 2 instances x (3 shards + reduction)
    got = sorted(project.show(r["id"])["outputs"]["got"] for r in project.runs("-j", "report"))
    assert got == [6, 60]
    assert "ev[scale=10,shard=2]" in done.stderr


def test_shard_builtins_and_env_in_a_non_python_command(project: Project) -> None:
    project.write("exp.yaml", """\
        jobs:
          echo:
            run: echo ${mayuri.shard}/${mayuri.shards} $MAYURI_SHARD
            shell: true
            shards: 2
          plain:
            run: echo ${mayuri.shard}/${mayuri.shards}
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    logs = sorted((project.root / ".mayuri/runs" / r["id"] / "stdout.log").read_text()
                  for r in project.runs() if (project.root / ".mayuri/runs" / r["id"] / "stdout.log").exists())
    assert logs == ["0/1\n", "0/2 0\n", "1/2 1\n"]


def test_plan_time_errors_name_the_file_and_line(project: Project) -> None:
    cases = {
        "shards: 0": "'shards' must be at least 1",
        "shards: {files: \"nothing/*.csv\", count: 2}": "matches no file",
        "shards: 2\n    reduce: {acc: mean}\n    outputs: [score]": "'acc' is not an output of this job",
        "shards: 2\n    reduce: {score: {weighted_mean: n}}\n    outputs: [score]": "'n' is not an output",
        "shards: 2\n    reduce: {score: average}": "unknown reduction 'average'",
        "reduce: {score: sum}": "'reduce' needs 'shards'",
        "shards: 2\n    retry: {failed: 1, delay: soon}": "retry.delay",
        "shards: 2\n    reduce: {a: sum}\n  down:\n    run: echo ${x}\n    depends_on: {ev: {b: x}}":
            "uses output 'b' of sharded job 'ev'",
    }
    for text, message in cases.items():
        project.write("exp.yaml", f"jobs:\n  ev:\n    run: echo hi\n    {text}\n")
        done = project.mayuri("run", "exp.yaml")
        assert done.returncode == 2, (text, done.stderr)
        assert message in done.stderr and "exp.yaml:" in done.stderr, (text, done.stderr)
        assert "Traceback" not in done.stderr
    project.write("exp.yaml", "tests:\n  ev:\n    run: echo hi\n    shards: 2\n    reduce: {a: sum}\n"
                              "    expect: {b: '>= 1'}\n")
    done = project.mayuri("test", "exp.yaml")
    assert done.returncode == 2 and "reduce has no 'b'" in done.stderr and "exp.yaml:" in done.stderr


def test_a_shards_files_are_inputs_of_a_command_that_is_not_audited(project: Project) -> None:
    for i in range(6):
        project.write(f"data/{i}.txt", f"{i}\n")
    project.write("exp.yaml", """\
        jobs:
          cat:
            run: "true"
            shards: {files: "data/*.txt", count: 3}
    """)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    before = ids(project)
    project.write("data/4.txt", "40\n")
    again = project.mayuri("run", "exp.yaml")
    assert again.returncode == 0, again.stderr
    # One shard reruns; it gives the same (empty) results, so the reduction stays cached (early cutoff).
    assert len(launched(project, before, "cat")) == 1 and "data/4.txt changed" in again.stderr
    assert "reran, same results: cached" in again.stderr, again.stderr
