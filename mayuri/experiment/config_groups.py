"""Config groups (as in Hydra): whole blocks of params picked by name.

A group is a folder under the project's configs folder (`[project] configs`,
default `configs/`), each choice one YAML file of params in it:
`configs/model/small.yaml`. `defaults: {model: small}` in an experiment file
puts that file's params under `model` in every job; `model=large` on the
command line picks another choice, `model=small,large` sweeps choices. The
choice files are read when the file is expanded (not kept with the parsed
file), so a new or edited choice is always seen.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.errors import ExperimentError
from mayuri.experiment.overrides import Override
from mayuri.experiment.spec import ExperimentSpec, Where

SUFFIXES = (".yaml", ".yml")


@dataclass
class Groups:
    """The config groups an experiment uses: the folder, the default choices, and choices read so far."""

    folder: Path
    defaults: dict[str, str]
    where: dict[str, Where]
    _loaded: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def available(self, group: str) -> list[str]:
        """The choices of `group`: the YAML files in its folder, by name."""
        folder = self.folder / group
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())

    def params(self, group: str, choice: Any, override: str | None = None) -> dict[str, Any]:
        """A copy of the params of `choice` in `group`; an unknown choice is an error listing the choices."""
        name = str(choice)
        if (group, name) not in self._loaded:
            self._loaded[(group, name)] = self._load(group, name, override)
        return copy.deepcopy(self._loaded[(group, name)])

    def _load(self, group: str, name: str, override: str | None) -> dict[str, Any]:
        # Loaded only with config groups: a cached run of a plain file never needs ruamel.yaml.
        from mayuri.experiment.plain import to_plain, type_name
        from mayuri.experiment.yaml_io import load_yaml

        path = next((self.folder / group / f"{name}{s}" for s in SUFFIXES
                     if (self.folder / group / f"{name}{s}").is_file()), None)
        if path is None or "/" in name or name.startswith("."):
            where = self.where[group]
            choices = self.available(group)
            asked = f"override '{override}': " if override else ""
            raise ExperimentError(
                f"{asked}config group '{group}' has no choice '{name}' (no {group}/{name}.yaml in {self.folder}).",
                path=where.path, line=where.line, column=where.column,
                hint=f"Choices: {', '.join(choices)}." if choices
                else f"Create {self.folder / group}/ with one YAML file of params per choice.",
            )
        data = load_yaml(path)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ExperimentError(f"a config choice must be a mapping of params, not a {type_name(data)}.",
                                  path=path, line=1, hint="Write `key: value` lines.")
        plain: dict[str, Any] = to_plain(data)
        return plain


def groups_of(spec: ExperimentSpec, folder: Path | None, overrides: Sequence[Override] = ()) -> Groups | None:
    """The groups of `spec` (None when it uses none), reading choices from `folder`.

    Besides the file's `defaults:`, `+GROUP=CHOICE` on the command line adds a group the file does
    not name, when GROUP is a folder of the configs folder (as Hydra's `+experiment=...`).
    """
    folder = folder or spec.path.parent / "configs"
    defaults, where = dict(spec.defaults), dict(spec.defaults_where)
    for override in overrides:
        if (override.op == "add" and override.job is None and "." not in override.key
                and override.key not in defaults and override.values and (folder / override.key).is_dir()):
            defaults[override.key] = str(override.values[0])
            where[override.key] = Where(spec.path)
    if not defaults:
        return None
    return Groups(folder, defaults, where)


def merge_under(content: dict[str, Any], own: Any) -> dict[str, Any]:
    """A choice's params with the experiment file's own values for the group on top (they win)."""
    if not isinstance(own, dict):
        return content
    for key, value in own.items():
        content[key] = merge_under(content[key], value) if isinstance(content.get(key), dict) else value
    return content
