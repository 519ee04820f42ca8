"""The distributions recorded with a run: mayuri/environment.py's faster reading agrees with importlib.metadata."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from mayuri import environment


def test_the_installed_distributions_map_as_packages_distributions_maps_them() -> None:
    expected = metadata.packages_distributions()
    modules = sorted(expected)
    assert len(modules) > 20, "too few distributions installed for the comparison to mean much"
    mapping = environment._module_to_distributions(modules)
    assert {module: [name for name, _ in found] for module, found in mapping.items()} == \
        {module: expected[module] for module in modules}
    assert environment._module_to_distributions(["no_such_module_anywhere"]) == {}
    # The version of each: the first install on the path, as importlib.metadata.version finds it.
    assert environment.distribution_versions(modules) == {
        name: metadata.version(name) for module in modules for name in expected[module]}


class _CountingDistribution(metadata.PathDistribution):
    reads = 0

    def read_text(self, filename: str) -> str | None:
        if filename in ("METADATA", "PKG-INFO"):
            _CountingDistribution.reads += 1
        return super().read_text(filename)


def test_a_distributions_metadata_is_parsed_once_until_it_changes(tmp_path: Path) -> None:
    info = tmp_path / "top-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: top\nVersion: 1.0\n")
    dist = _CountingDistribution(info)
    assert environment._name_and_version(dist) == ("top", "1.0")
    assert environment._name_and_version(dist) == ("top", "1.0")
    assert _CountingDistribution.reads == 1
    # Reinstalled meanwhile (a scheduler may run for days): read again, never a stale version.
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: top\nVersion: 1.10\n")
    assert environment._name_and_version(dist) == ("top", "1.10")


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
