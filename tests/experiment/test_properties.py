"""Property-based tests: random YAML, mutated example files and random overrides never cause a traceback."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mayuri.errors import MayuriError
from mayuri.experiment import expand, parse_experiment, parse_override

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*/*.yaml"))

yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(["${x}", "${mayuri.run_dir}", "$${y}", "no", "010", "1.10", "!!python/object", "&a", "*a"]),
)
keys = st.one_of(st.sampled_from(["name", "jobs", "tests", "params", "run", "sweep", "depends_on", "gather",
                                  "extends", "pipeline", "expect", "env", "cache", "timeout", "retry",
                                  "resources", "outputs", "inputs", "shell", "python"]),
                 st.text(min_size=1, max_size=8))
documents = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)),
    max_leaves=25,
)


def _dump(value: object, indent: int = 0) -> str:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "\n" + "\n".join(f"{pad}{k!r}: {_dump(v, indent + 2)}" for k, v in value.items())
    if isinstance(value, list):
        if not value:
            return "[]"
        return "\n" + "\n".join(f"{pad}- {_dump(v, indent + 2)}" for v in value)
    return repr(value) if not isinstance(value, str) else value


def _load_everything(path: Path, text: str) -> None:
    try:
        spec = parse_experiment(path, text)
        expand(spec, kinds=("job", "test"))
    except MayuriError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=400))
def test_random_text_never_raises_anything_but_a_mayuri_error(tmp_path: Path, text: str) -> None:
    _load_everything(tmp_path / "exp.yaml", text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents)
def test_random_yaml_structures_never_raise_anything_but_a_mayuri_error(tmp_path: Path, doc: object) -> None:
    _load_everything(tmp_path / "exp.yaml", _dump(doc).lstrip("\n") or "x")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(EXAMPLES),
    st.lists(st.tuples(st.integers(min_value=0, max_value=4000), st.sampled_from(["del", "ins", "swap"]),
                       st.sampled_from(list(" :-[]{}$#\n\t'\"&*!|>0aZ,."))), min_size=1, max_size=4),
)
def test_mutated_examples_never_raise_anything_but_a_mayuri_error(
    tmp_path: Path, example: Path, edits: list[tuple[int, str, str]]
) -> None:
    text = example.read_text()
    for position, action, char in edits:
        at = position % (len(text) + 1)
        if action == "del":
            text = text[:at] + text[at + 1:]
        elif action == "ins":
            text = text[:at] + char + text[at:]
        else:
            text = text[:at] + char + text[at + 1:]
    # Mutations are parsed where the example lives, so that its pipeline: and extends: resolve.
    _load_everything(example.parent / "mutated.yaml", text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_override_parser_never_raises_anything_but_a_mayuri_error(text: str) -> None:
    try:
        override = parse_override(text, {"train", "data"})
    except MayuriError:
        return
    # Only a removal (`~KEY`) has no value.
    assert override.key and bool(override.values) != (override.op == "remove")
