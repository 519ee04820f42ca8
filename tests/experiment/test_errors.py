"""Bad experiment files: each error names file:line:col, says what is wrong and suggests a fix."""

from __future__ import annotations

import resource
import textwrap
import time
from pathlib import Path

import pytest

from mayuri.errors import ExperimentError
from mayuri.experiment import expand, parse_experiment, parse_override


def load(tmp_path: Path, text: str, name: str = "exp.yaml") -> list:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    spec = parse_experiment(path)
    return expand(spec, kinds=("job", "test"))


def error_of(tmp_path: Path, text: str) -> ExperimentError:
    with pytest.raises(ExperimentError) as info:
        load(tmp_path, text)
    return info.value


def test_unknown_job_key_suggests_the_right_one(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        jobs:
          train:
            run: python t.py
            parms: {lr: 0.1}
    """)
    assert (exc.line, exc.column) == (5, 5)
    assert exc.path and exc.path.endswith("exp.yaml")
    assert "unknown key 'parms'" in str(exc) and "did you mean 'params'?" in str(exc)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        nmae: x
        jobs: {a: {run: "true"}}
    """)
    assert exc.line == 2 and "did you mean 'name'?" in str(exc)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        jobs:
          a:
            run: "true"
            gather: "yes please"
    """)
    assert exc.line == 5 and "'gather' must be true or false" in str(exc)


def test_run_must_be_a_command(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        jobs:
          a: {run: 3}
    """)
    assert "'run' must be a command" in str(exc)


def test_unknown_dependency_suggests(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        jobs:
          prep: {run: "true"}
          train:
            run: "true"
            depends_on: {prepp: {}}
    """)
    assert exc.line == 6 and "unknown job 'prepp'" in str(exc) and "did you mean 'prep'?" in str(exc)


def test_cycle_is_spelled_out(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        jobs:
          a: {run: "true", depends_on: [c]}
          b: {run: "true", depends_on: [a]}
          c: {run: "true", depends_on: [b]}
    """)
    assert "a -> c -> b -> a" in str(exc)
    assert exc.line is not None


def test_undefined_interpolation_points_at_the_command(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        params: {learning_rate: 0.1}
        jobs:
          train:
            run: python t.py --lr ${lerning_rate}
    """)
    assert exc.line == 5
    assert "undefined name '${lerning_rate}'" in str(exc) and "did you mean 'learning_rate'?" in str(exc)


def test_params_referring_to_each_other_in_a_loop(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        jobs:
          a:
            run: echo ${x}
            params: {x: "${y}", y: "${x}"}
    """)
    assert "loop" in str(exc) and "x -> y -> x" in str(exc)


def test_empty_sweep(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        jobs:
          a:
            run: echo ${lr}
            params: {lr: 1}
            sweep: {lr: []}
    """)
    assert "sweep.lr is empty" in str(exc) and exc.line == 3


def test_extends_loop(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\njobs: {x: {run: 'true'}}\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ExperimentError) as info:
        parse_experiment(tmp_path / "a.yaml")
    assert "'extends' loop" in str(info.value) and "a.yaml -> b.yaml -> a.yaml" in str(info.value)


def test_missing_pipeline_file(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        jobs:
          data:
            pipeline: nowhere.yaml
    """)
    assert exc.line == 4 and "pipeline file not found: nowhere.yaml" in str(exc)


def test_pipeline_loop(tmp_path: Path) -> None:
    (tmp_path / "inner.yaml").write_text("jobs: {again: {pipeline: exp.yaml}}\n")
    exc = error_of(tmp_path, """
        jobs:
          step: {pipeline: inner.yaml}
    """)
    assert "loop" in str(exc)


def test_duplicate_keys_cite_the_second(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        jobs:
          a: {run: "true"}
          a: {run: "false"}
    """)
    assert exc.line == 4 and "duplicate key" in str(exc)


def test_tabs(tmp_path: Path) -> None:
    exc = error_of(tmp_path, "jobs:\n\ta: {run: 'true'}\n")
    assert exc.line == 2 and "tabs" in str(exc)


def test_python_tags_are_refused(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        jobs:
          a:
            run: !!python/object/apply:os.system ["touch /tmp/pwn"]
    """)
    assert "tag" in str(exc) and exc.line == 4


def test_norway_and_octal_look_alikes_stay_what_yaml_1_2_says(tmp_path: Path) -> None:
    [inst] = load(tmp_path, """
        params: {countries: [no, se], mode: 010, version: "1.10"}
        jobs:
          a:
            run: echo ${countries} ${mode} ${version}
    """)
    assert inst.params["countries"] == ["no", "se"]
    assert inst.params["mode"] == 10
    assert inst.command[1:] == ['["no","se"]', "10", "1.10"]


def test_billion_laughs_is_refused_fast_and_small(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append("jobs: {x: {run: 'true'}}")
    path = tmp_path / "exp.yaml"
    path.write_text("\n".join(lines) + "\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ExperimentError) as info:
        parse_experiment(path)
    assert time.monotonic() - started < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
    assert "too many values" in str(info.value)


def test_huge_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("jobs: {x: {run: 'true'}}\n# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ExperimentError) as info:
        parse_experiment(path)
    assert info.value.line == 1 and "limited to" in str(info.value)


def test_expect_must_be_a_comparison(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        tests:
          t:
            run: "true"
            expect: {accuracy: "about 0.9"}
    """)
    assert exc.line == 5 and "not a comparison" in str(exc)


def test_expect_on_a_job_belongs_to_tests(tmp_path: Path) -> None:
    exc = error_of(tmp_path, """
        jobs:
          t:
            run: "true"
            expect: {accuracy: ">= 0.9"}
    """)
    assert "belongs to tests" in str(exc)


def test_override_of_unknown_param(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("params: {learning_rate: 1}\njobs:\n  a:\n    run: echo ${learning_rate}\n")
    spec = parse_experiment(path)
    with pytest.raises(ExperimentError) as info:
        expand(spec, [parse_override("lerning_rate=2", set(spec.jobs))])
    assert "did you mean 'learning_rate'?" in str(info.value)


def test_only_unknown_job(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("jobs: {train: {run: 'true'}}\n")
    with pytest.raises(ExperimentError) as info:
        expand(parse_experiment(path), only=["trian"])
    assert "did you mean 'train'?" in str(info.value)
