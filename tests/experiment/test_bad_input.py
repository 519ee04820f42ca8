"""Bad input is refused before anything runs (exit 2, the file and line, a suggestion), and nothing is lost."""

from __future__ import annotations

import resource
import time

import pytest

from tests.conftest import Project

SIBLING = """
name: bad
jobs:
  healthy:
    run: python -c "print('ok')"
  bad:
    run: python -c "import sys; print(len(sys.argv))" ${value}
    params:
      value: VALUE
"""


def _refused(project: Project, *args: str, expect: str) -> str:
    done = project.mayuri("run", *args)
    message = " ".join(done.stderr.split())
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and expect in message, message
    assert project.runs() == [], "nothing may run (or be recorded) when the plan is refused"
    return message


@pytest.mark.parametrize("value, expect", [
    ('"a\\0b"', "params.value: the value contains a NUL byte"),
    ("x" * 200_000, "params.value: the value is 200,000 characters, longer than the system allows"),
], ids=["nul", "huge"])
def test_unlaunchable_values_are_refused_with_their_place(project: Project, value: str, expect: str) -> None:
    project.write("exp.yaml", SIBLING.replace("VALUE", value))
    message = _refused(project, "exp.yaml", expect=expect)
    assert "exp.yaml:9" in message, message


def test_a_huge_grid_is_counted_not_expanded(project: Project) -> None:
    values = list(range(100))
    project.write("exp.yaml", f"""
        name: huge
        jobs:
          train:
            run: python -c "pass"
            params: {{a: 0, b: 0, c: 0}}
            sweep: {{a: {values}, b: {values}, c: {values}}}
    """)
    began = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    message = _refused(project, "exp.yaml", expect="the plan would make 1,000,000 job instances, more than "
                       "[scheduler] max_plan (100,000)")
    assert "a (100) x b (100) x c (100)" in message and "Narrow the sweep" in message
    assert time.monotonic() - began < 30
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < max(before, 1) + 500_000  # KiB


def test_max_plan_counts_fan_out_and_command_line_sweeps(project: Project) -> None:
    (project.root / "mayuri.toml").write_text("[scheduler]\nmax_plan = 10\n")
    project.write("exp.yaml", """
        name: fan
        jobs:
          data:
            run: python -c "pass"
            params: {n: 0}
          fit:
            run: python -c "pass"
            params: {seed: 0}
            depends_on: [data]
    """)
    _refused(project, "exp.yaml", "n=1,2,3", "seed=1,2,3", expect="the plan would make 12 job instances")
    assert project.mayuri("run", "exp.yaml", "n=1,2", "seed=1,2").returncode == 0


def test_pipelines_nested_too_deep_are_refused(project: Project) -> None:
    depth = 40
    for level in range(depth):
        inner = (f"  step:\n    pipeline: p{level + 1}.yaml\n" if level + 1 < depth
                 else "  leaf:\n    run: python -c \"pass\"\n")
        project.write(f"p{level}.yaml", f"name: p{level}\njobs:\n{inner}")
    message = _refused(project, "p0.yaml", expect="pipeline files nest more than 32 deep")
    assert "malformed YAML" not in message and "p31.yaml:3" in message, message


@pytest.mark.parametrize("oom, expect", [
    ("{wait: soon}", "retry.oom.wait:"),
    ("{strategy: shrink}", "retry.oom.strategy must be one of scale, move, wait, not 'shrink'"),
    ("{max: many}", "retry.oom.max must be a number of retries"),
    ("{scale: {batch: 0.5}, floor: low}", "retry.oom.floor must be a number"),
], ids=["wait", "strategy", "max", "floor"])
def test_a_bad_oom_retry_is_refused_before_anything_runs(project: Project, oom: str, expect: str) -> None:
    # Parsed once with the file: a bad value never waits for the first out-of-memory to surface.
    project.write("exp.yaml", f"""
        jobs:
          train:
            run: python -c "pass"
            retry:
              oom: {oom}
    """)
    message = _refused(project, "exp.yaml", expect=expect)
    assert "exp.yaml:6" in message, message
