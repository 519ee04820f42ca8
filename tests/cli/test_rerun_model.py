"""Random pipelines against a reference model of what must exist and what must rerun (issue 15).

Each example is a small random DAG of jobs. Every job sweeps a private param
(one or two values, written into its command), uses some of the top-level
params `a` and `b` (written into its command, or read through
`mayuri.params()`), consumes its upstreams' outputs, and outputs a hash of
what it used, or a constant. The file is run through the real CLI, possibly
with `a` swept on the command line (a multirun), then once more after a
random change: another value of `b`, or a comment in one job's script, then
once more after random jobs are renamed, always one that others depend on
when there is one, and any others, upstream or downstream (a job's key
in the file and in its downstream jobs' `depends_on`; its script and the
params it feeds keep their names: the work is the same). The
model says which instances exist (the product of the swept params of a job
and its ancestors: a multirun is copies of the pipeline), what each outputs,
and which distinct pieces of work must run: a run the store did not have
before must run (no false hit: every output is checked against the model),
and nothing else may (no needless rerun: the count of new runs per job is
the model's).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Project

SCRIPT = """\
import hashlib, json, sys
import mayuri
name, constant = sys.argv[1], sys.argv[2] == "1"
params = mayuri.params()
read = {{key: params[key] for key in {reads!r}}}
seen = [name, sys.argv[3:], sorted(read.items())]
value = "c-" + name if constant else hashlib.sha256(json.dumps(seen).encode()).hexdigest()[:12]
mayuri.output("v", value)
# version {version}
"""


@dataclass
class Job:
    name: str  # its script and params: what it does
    upstream: list[str]
    sweep: list[int]
    interpolated: list[str]  # of "a", "b": written into the command
    read: list[str]  # of "a", "b": read through mayuri.params()
    constant: bool
    version: int = 0
    # Its key in the file (what `depends_on`, labels and runs call it); a rename changes only this.
    key: str = ""

    def __post_init__(self) -> None:
        self.key = self.key or self.name

    def command(self) -> str:
        args = [f"${{p_{self.name}}}", *(f"${{u_{u}}}" for u in self.upstream),
                *(f"${{{k}}}" for k in self.interpolated)]
        return f"python {self.name}.py {self.name} {int(self.constant)} " + " ".join(args)


@dataclass
class Model:
    jobs: list[Job]
    a_values: list[int]
    b: int
    done: set[tuple[Any, ...]] = field(default_factory=set)

    def ancestors(self, name: str) -> list[str]:
        job = next(j for j in self.jobs if j.name == name)
        found: list[str] = []
        for up in job.upstream:
            for other in [*self.ancestors(up), up]:
                if other not in found:
                    found.append(other)
        return found

    def instances(self, job: Job) -> list[dict[str, int]]:
        """Each instance as its assignment: `a` and the private params of the job and its ancestors."""
        names = [*self.ancestors(job.name), job.name]
        sweeps = [[(f"p_{n}", v) for v in next(j for j in self.jobs if j.name == n).sweep] for n in names]
        return [dict([("a", a), *combo]) for a in self.a_values for combo in itertools.product(*sweeps)]

    def output(self, job: Job, assignment: dict[str, int]) -> tuple[str, tuple[Any, ...]]:
        """(its output, the work key) of one instance."""
        ups = [self.output(next(j for j in self.jobs if j.name == u), assignment)[0] for u in job.upstream]
        values = {"a": assignment["a"], "b": self.b}
        argv = [str(assignment[f"p_{job.name}"]), *ups, *(str(values[k]) for k in job.interpolated)]
        read = sorted((k, values[k]) for k in job.read)
        seen = [job.name, argv, [list(item) for item in read]]
        value = "c-" + job.name if job.constant else hashlib.sha256(json.dumps(seen).encode()).hexdigest()[:12]
        used = sorted({*job.interpolated, *job.read})
        script = SCRIPT.format(reads=job.read, version=job.version)
        work = (job.command(), script, tuple(argv), tuple((k, values[k]) for k in used))
        return value, work


@st.composite
def models(draw: st.DrawFn) -> Model:
    count = draw(st.integers(2, 3))
    jobs: list[Job] = []
    for index in range(count):
        earlier = [j.name for j in jobs]
        upstream = sorted(draw(st.sets(st.sampled_from(earlier), max_size=2))) if earlier else []
        used = draw(st.lists(st.sampled_from(["a", "b"]), unique=True, max_size=2))
        how = draw(st.lists(st.booleans(), min_size=len(used), max_size=len(used)))
        jobs.append(Job(
            name=f"j{index}", upstream=upstream, sweep=draw(st.sampled_from([[1], [1, 2]])),
            interpolated=[k for k, inline in zip(used, how, strict=True) if inline],
            read=[k for k, inline in zip(used, how, strict=True) if not inline],
            constant=draw(st.booleans()),
        ))
    return Model(jobs, draw(st.sampled_from([[0], [0, 1]])), 0)


def write(project: Project, model: Model) -> None:
    lines = ["name: model", "params: {a: 0, b: 0}", "jobs:"]
    for job in model.jobs:
        project.write(f"{job.name}.py", SCRIPT.format(reads=job.read, version=job.version))
        lines += [f"  {job.key}:", f"    run: {job.command()}", f"    params: {{p_{job.name}: 0}}",
                  f"    sweep: {{p_{job.name}: {job.sweep}}}"]
        if job.upstream:
            keys = {j.name: j.key for j in model.jobs}
            lines.append("    depends_on: {" + ", ".join(f"{keys[u]}: {{v: u_{u}}}" for u in job.upstream) + "}")
    project.write("exp.yaml", "\n".join(lines) + "\n")


def run_and_check(project: Project, model: Model) -> None:
    args = [f"b={model.b}"] + ([f"a={','.join(map(str, model.a_values))}"] if len(model.a_values) > 1 else [])
    before = {run["id"] for run in project.runs()}
    done = project.mayuri("run", "exp.yaml", *args)
    assert done.returncode == 0, done.stderr
    new_runs = [run for run in project.runs() if run["id"] not in before]
    reported = _reported(done.stderr)
    outputs = _outputs(project, [rid for _, rid in reported.values()])
    for job in model.jobs:
        expected = model.instances(job)
        mine = {label: rid for label, (_, rid) in reported.items() if label.split("[")[0] == job.key}
        assert len(mine) == len(expected), (job, sorted(mine), done.stderr)
        want = sorted(model.output(job, assignment)[0] for assignment in expected)
        got = sorted(outputs[rid] for rid in mine.values())
        assert got == want, f"stale or wrong outputs of {job.name} (a false hit?)\n{done.stderr}"
        work = {model.output(job, assignment)[1] for assignment in expected}
        new = work - model.done
        ran = sum(1 for run in new_runs if run["job"] == job.key and run["status"] == "succeeded")
        assert ran == len(new), f"{job.key}: {ran} runs for {len(new)} new pieces of work\n{done.stderr}"
        model.done |= work


def _reported(stderr: str) -> dict[str, tuple[str, str]]:
    """label -> (final status, short run id) from `mayuri run`'s plain lines."""
    found = {}
    for line in stderr.splitlines():
        match = re.match(r"^(\S+)\s+(cached|succeeded)\s+([0-9a-f]{8})\s", line)
        if match:
            found[match.group(1)] = (match.group(2), match.group(3))
    return found


def _outputs(project: Project, short_ids: list[str]) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{project.db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT run_id, value FROM output WHERE name = 'v'").fetchall()
    finally:
        conn.close()
    values = {rid[:8]: json.loads(value) for rid, value in rows}
    return {short: values[short] for short in short_ids}


@pytest.mark.slow
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=models(), change=st.sampled_from(["b", "script"]), which=st.integers(0, 2), renamed=st.sets(st.integers(0, 2)))
def test_random_pipelines_rerun_exactly_what_the_model_says(
    project: Project, model: Model, change: str, which: int, renamed: set[int]
) -> None:
    # A fresh project (and store) for each example: the model starts from nothing.
    fresh = Project(project.root / f"example-{next(_EXAMPLES)}")
    fresh.root.mkdir()
    assert fresh.mayuri("init").returncode == 0
    write(fresh, model)
    run_and_check(fresh, model)
    if change == "b":
        model.b += 1
    else:
        job = model.jobs[which % len(model.jobs)]
        job.version += 1
        write(fresh, model)
    run_and_check(fresh, model)
    # Jobs renamed, one that others depend on among them: nothing new to do.
    upstream = [j for j in model.jobs if any(j.name in other.upstream for other in model.jobs)]
    for job in [*upstream[:1], *(model.jobs[i % len(model.jobs)] for i in renamed)]:
        job.key = f"renamed_{job.name}"
    write(fresh, model)
    run_and_check(fresh, model)


_EXAMPLES = itertools.count()
