"""Hydra's override grammar: quotes, range/choice, +key, ~key, null, brackets; the rest refused clearly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayuri.errors import ExperimentError
from mayuri.experiment.overrides import parse_override
from tests.conftest import Project

ECHO = 'python -c "import json, sys; print(json.dumps(sys.argv[1:]))"'


@pytest.mark.parametrize(("text", "values", "sweep"), [
    ("seed=range(0,3)", (0, 1, 2), True),
    ("seed=range(0, 10, 4)", (0, 4, 8), True),
    ("seed=range(3)", (0, 1, 2), True),
    ("lr=choice(0.1,0.2)", (0.1, 0.2), True),
    ("lr=choice(0.1)", (0.1,), True),
    ("tag='x,y'", ("x,y",), False),
    ('tag="a b, c"', ("a b, c",), False),
    ("tag='x,y',z", ("x,y", "z"), True),
    ("tag='it\\'s'", ("it's",), False),
    ("k=null", (None,), False),
    ("shape=[1,2]", ([1, 2],), False),
    ("shape=[1,2],[3]", ([1, 2], [3]), True),
    ("opt={lr: 1, b: [2, 3]}", ({"lr": 1, "b": [2, 3]},), False),
    ("names=['a,b', c]", (["a,b", "c"],), False),
])
def test_values(text: str, values: tuple[Any, ...], sweep: bool) -> None:
    override = parse_override(text, set())
    assert override.values == values
    assert override.is_sweep == sweep


@pytest.mark.parametrize(("text", "says"), [
    ("lr=interval(0,1)", "interval"),
    ("tag='x", "never closed"),
    ('tag="x', "never closed"),
    ("a=[1,2", "missing"),
    ("a={x: 1", "missing"),
    ("a=1)", "closes nothing"),
    ("a=range(0,b)", "range takes"),
    ("a=range(3,0)", "empty"),
    ("a=shuffle(1,2)", "shuffle"),
    ("a='x'y", "after its closing quote"),
    ("a=x'y'", "quote inside"),
    ("++a=1", "'++'"),
    ("a=choice()", "empty"),
    ("a=1,,2", "empty value"),
    ("a=[1,2]x", "not a valid list"),
    ("~seed=3", "removes a param and gives it a value"),  # the value was once dropped without a word
])
def test_refused(text: str, says: str) -> None:
    with pytest.raises(ExperimentError) as caught:
        parse_override(text, set())
    assert says in str(caught.value)
    assert text in str(caught.value)


# Values that the grammar must carry through unchanged when quoted: commas, spaces, quotes, brackets.
_text = st.text(alphabet=st.sampled_from(list("ab ,()[]{}'\"\\=+~:x1")), max_size=8)
_plain = st.one_of(st.integers(-1000, 1000), st.sampled_from(["a", "lr", "x_1", "true", "null", "1.5"]))


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_text.map(lambda t: ("q", t)), _plain.map(lambda p: ("p", p))), min_size=1, max_size=4),
       st.booleans())
def test_generated_overrides_parse_to_what_they_mean(items: list[tuple[str, Any]], as_choice: bool) -> None:
    from mayuri.experiment.overrides import parse_value

    parts = [_quoted(v) if kind == "q" else str(v) for kind, v in items]
    expected = tuple(v if kind == "q" else parse_value(str(v)) for kind, v in items)
    text = f"key=choice({', '.join(parts)})" if as_choice else "key=" + ",".join(parts)
    override = parse_override(text, set())
    assert override.values == expected
    assert override.is_sweep == (as_choice or len(items) > 1)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab1 ,()[]{}'\"\\=+~:.-#")), max_size=14))
def test_any_value_parses_or_is_refused_with_the_override_quoted(raw: str) -> None:
    text = f"key={raw}"
    try:
        override = parse_override(text, set())
    except ExperimentError as exc:
        assert text in str(exc)
        return
    from mayuri.experiment.overrides import parse_value

    # An unbalanced single quote (no other quoting around) is never accepted.
    assert not (raw.count("'") % 2 == 1 and '"' not in raw and "\\" not in raw), override
    assert raw.count("[") == raw.count("]") or "'" in raw or '"' in raw
    if not set(raw) & set("'\"()[]{}\\"):
        # Plain text: exactly the comma-separated YAML values, nothing split differently.
        assert override.values == tuple(parse_value(part.strip()) for part in raw.split(","))
    assert override.values


def _run(project: Project, *overrides: str) -> list[list[str]]:
    done = project.mayuri("run", "exp.yaml", *overrides)
    assert done.returncode == 0, done.stderr
    return sorted(json.loads((project.root / ".mayuri" / "runs" / r["id"] / "stdout.log").read_text())
                  for r in project.runs())


def test_each_form_through_the_cli(project: Project) -> None:
    project.write("exp.yaml", f"""\
        params: {{seed: 0, tag: a, opt: {{lr: 1}}}}
        jobs:
          train:
            run: {ECHO} ${{seed}} ${{tag}} ${{opt}}
        """)
    assert _run(project, "seed=range(0,2)", "tag='x,y'") == [["0", "x,y", '{"lr":1}'], ["1", "x,y", '{"lr":1}']]
    project.write("exp.yaml", f"""\
        params: {{seed: 0, tag: a}}
        jobs:
          train:
            run: {ECHO} ${{seed}} ${{extra}} ${{tag}}
        """)
    (project.root / ".mayuri" / "runs").exists()
    done = project.mayuri("run", "exp.yaml", "+extra=[1, 2]", "tag=null", "--dry-run")
    assert done.returncode == 0, done.stderr
    done = project.mayuri("run", "exp.yaml", "extra=1")
    assert done.returncode == 2 and "+KEY=VALUE" in done.stderr
    done = project.mayuri("run", "exp.yaml", "+seed=1")
    assert done.returncode == 2 and "already a param" in done.stderr and "seed=1" in done.stderr
    done = project.mayuri("run", "exp.yaml", "+extra=1", "~tag")
    # The removed param is still used by the command: the error says which.
    assert done.returncode == 2 and "${tag}" in done.stderr
    done = project.mayuri("run", "exp.yaml", "~nope", "+extra=1")
    assert done.returncode == 2 and "'nope' is not a param" in done.stderr


def test_a_removed_param_and_null(project: Project) -> None:
    project.write("exp.yaml", f"""\
        params: {{seed: 0, tag: a}}
        jobs:
          train:
            run: {ECHO} ${{seed}}
            params: {{unused: 1}}
            sweep: {{seed: [1, 2]}}
        """)
    done = project.mayuri("run", "exp.yaml", "~seed", "--dry-run")
    assert done.returncode == 2 and "seed" in done.stderr
    assert _run(project, "seed=null") == [["null"]]


def test_refused_forms_through_the_cli_write_nothing(project: Project) -> None:
    project.write("exp.yaml", f"params: {{seed: 0}}\njobs:\n  a:\n    run: {ECHO} ${{seed}}\n")
    for bad in ("seed=interval(0,1)", "seed='0,1", "seed=[0,1"):
        done = project.mayuri("run", "exp.yaml", bad)
        assert done.returncode == 2, bad
        assert bad in done.stderr and "Traceback" not in done.stderr
    assert project.runs() == []
