"""The distributions recorded with a run: mayuri/environment.py's faster reading agrees with importlib.metadata."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from mayuri import environment


def test_the_installed_distributions_map_as_packages_distributions_maps_them() -> None:
    expected = metadata.packages_distributions()
    modules = sorted(expected)
    assert len(modules) > 20, "too few distributions installed for the comparison to mean much"
    assert environment._module_to_distributions(modules) == {module: expected[module] for module in modules}
    assert environment._module_to_distributions(["no_such_module_anywhere"]) == {}


RECORD = """\
top/__init__.py,sha256=x,1
top/sub/deep.py,,
single.py,,
./dotted.py,,
"comma,name.py",,
../../bin/script.py,,
/abs/olute.py,,
data/notes.txt,,
top/.py,,
.py,,
noext,,
top.dist-info/RECORD,,
"""


def test_record_top_levels_read_paths_as_path_objects_do(tmp_path: Path) -> None:
    info = tmp_path / "top-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: top\nVersion: 1.0\n")
    (info / "RECORD").write_text(RECORD)
    dist = metadata.PathDistribution(info)
    # importlib.metadata's own rule (`_top_level_inferred`), on the PackagePath objects of `files`.
    expected = {f.parts[0] if len(f.parts) > 1 else f.with_suffix("").name for f in dist.files or []
                if f.suffix == ".py"}
    assert environment._record_top_levels(dist) == expected
    assert {"top", "single", "dotted", "comma,name", "..", "/"} == expected
