"""The project and its settings: finding `mayuri.toml`, reading and validating it.

Reads with tomllib (fast, strict); writing is left to `mayuri.init_project`,
which uses tomlkit so that users' comments survive. Nothing here touches the
store.
"""

from __future__ import annotations

import getpass
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.errors import ConfigError
from mayuri.suggest import did_you_mean
from mayuri.units import parse_duration, parse_size

CONFIG_NAME = "mayuri.toml"
KEY_ENV_PARTS = ("python", "platform", "packages", "git", "gpu")

# Allowed keys per table, with the type each value must have.
_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "project": {"name": str, "configs": str},
    "store": {"path": str, "allow_network_fs": bool, "busy_timeout": (int, float)},
    "scheduler": {
        "max_parallel": int,
        "gpus": (str, list),
        "poll_interval": (int, float),
        "kill_grace": (int, float),
        "max_plan": int,
    },
    "cache": {"key_env": list, "roots": list},
    "gc": {
        "older_than": str,
        "keep_last": int,
        "failed": bool,
        "max_size": str,
        "grace": str,
        "experiment": dict,
    },
    "user": {},
    # `default`, and one table per executor (`[executor.ray]`): its options, read by that executor.
    "executor": {"default": str},
    # Dashboard key bindings by binding id (`"runs.filter" = "f"`); ids are listed in docs/dashboard.md.
    "keys": {},
}


@dataclass(frozen=True)
class StoreSettings:
    path: Path
    allow_network_fs: bool = False
    busy_timeout: float = 30.0


@dataclass(frozen=True)
class SchedulerSettings:
    max_parallel: int = 4
    gpus: str | list[int] = "all"
    poll_interval: float = 0.05
    kill_grace: float = 10.0
    # The most job instances one `mayuri run` may plan; counted before anything is expanded.
    max_plan: int = 100_000


@dataclass(frozen=True)
class ExecutorSettings:
    """`[executor]`: the executor jobs run on unless they name one, and each executor's own table."""

    default: str = "local"
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


GC_RULE_KEYS = ("older_than", "keep_last", "failed")


@dataclass(frozen=True)
class GcRules:
    """The run rules of `[gc]` or of one `[gc.experiment.NAME]`, parsed; None where not written."""

    older_than: float | None = None
    keep_last: int | None = None
    failed: bool | None = None


@dataclass(frozen=True)
class GcSettings:
    """`[gc]`, parsed once when mayuri.toml is read (`mayuri gc`'s flags override it: `mayuri.gc.policy`)."""

    rules: GcRules = GcRules()
    max_size: int | None = None
    grace: float | None = None
    experiments: dict[str, GcRules] = field(default_factory=dict)


def gc_value(source: str, key: str, raw: Any, path: Path | None = None, line: int | None = None) -> Any:
    """One `[gc]` value (or `mayuri gc` flag) parsed: durations in seconds, sizes in bytes; ConfigError if bad."""
    try:
        if key in ("older_than", "grace"):
            return parse_duration(raw)
        if key == "max_size":
            return parse_size(raw)
        if key == "keep_last":
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                raise ValueError(f"must be a whole number >= 0, not {raw!r}")
            return raw
        if key == "failed":
            if not isinstance(raw, bool):
                raise ValueError(f"must be true or false, not {raw!r}")
            return raw
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}.", path=path, line=line) from None
    raise ConfigError(f"{source}: unknown key — {did_you_mean(key, GC_RULE_KEYS)}", path=path, line=line)


def _gc_settings(text: str, path: Path, table: dict[str, Any]) -> GcSettings:
    def parsed(source: str, key: str, raw: Any, section: str) -> Any:
        return gc_value(source, key, raw, path, _line_of(text, key, section))

    def rules(values: dict[str, Any], source: str, section: str) -> GcRules:
        return GcRules(**{key: parsed(f"{source} {key}", key, raw, section)
                          for key, raw in values.items() if key in GC_RULE_KEYS or section != "gc"})

    experiments = {}
    for name, values in table.get("experiment", {}).items():
        if not isinstance(values, dict):
            raise ConfigError(f"[gc.experiment.{name}] must be a table.", path=path,
                              line=_line_of(text, f"gc.experiment.{name}"))
        experiments[name] = rules(values, f"[gc.experiment.{name}]", f"gc.experiment.{name}")
    return GcSettings(
        rules=rules(table, "[gc]", "gc"),
        max_size=parsed("[gc] max_size", "max_size", table["max_size"], "gc") if "max_size" in table else None,
        grace=parsed("[gc] grace", "grace", table["grace"], "gc") if "grace" in table else None,
        experiments=experiments,
    )


@dataclass(frozen=True)
class Settings:
    """Everything `mayuri.toml` says, with defaults filled in and paths resolved."""

    root: Path
    name: str
    store: StoreSettings
    scheduler: SchedulerSettings
    key_env: tuple[str, ...] = ()
    # Folders outside the project whose files count in closures like project files.
    cache_roots: tuple[Path, ...] = ()
    gc: GcSettings = GcSettings()
    user_overrides: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    # The config groups' folder (`[project] configs`), one subfolder per group.
    configs: Path | None = None
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` that holds `mayuri.toml`."""
    # The working folder as the kernel reports it is already free of symbolic links.
    here = Path(os.getcwd()) if start is None else start.resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise ConfigError(
        f"no {CONFIG_NAME} found in {here} or any folder above it.",
        hint="Run `mayuri init` at the root of your project first.",
    )


def _line_of(text: str, key: str, table: str | None = None) -> int | None:
    """Best-effort line number of `key` (inside `[table]` when given) in TOML text."""
    in_table = table is None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[+\s*([^\]]+?)\s*\]+", stripped)
        if header:
            name = header.group(1)
            if table is not None:
                in_table = name == table
            if table is None and name == key:
                return number
            continue
        if in_table and re.match(rf"^[\"']?{re.escape(key)}[\"']?\s*=", stripped):
            return number
    return None


def _check_table(text: str, path: Path, table: str, values: Any) -> None:
    allowed = _SCHEMA[table]
    if not isinstance(values, dict):
        raise ConfigError(
            f"'{table}' must be a table.", path=path, line=_line_of(text, table)
        )
    if table == "user":
        return
    if table == "keys":
        for key, value in values.items():
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"[keys] {key} must be a key name like \"f5\" or \"ctrl+r\", not {value!r}.",
                    path=path,
                    line=_line_of(text, key, table),
                )
        return
    for key, value in values.items():
        if table == "executor" and key not in allowed:
            if not isinstance(value, dict):
                raise ConfigError(
                    f"[executor] {key} must be a table of that executor's options ([executor.{key}]) "
                    f"or `default`, not {type(value).__name__} ({value!r}).",
                    path=path,
                    line=_line_of(text, key, table),
                    hint='For example: [executor] default = "local"',
                )
            continue
        if key not in allowed:
            raise ConfigError(
                f"unknown key '{key}' in [{table}] — {did_you_mean(key, allowed)}",
                path=path,
                line=_line_of(text, key, table),
            )
        expected = allowed[key]
        # bool is an int in Python; a bool where a number is wanted is a mistake.
        wrong_bool = isinstance(value, bool) and expected is not bool and bool not in (
            expected if isinstance(expected, tuple) else (expected,)
        )
        if wrong_bool or not isinstance(value, expected):
            names = expected.__name__ if isinstance(expected, type) else " or ".join(
                t.__name__ for t in expected
            )
            raise ConfigError(
                f"[{table}] {key} must be a {names}, not {type(value).__name__} ({value!r}).",
                path=path,
                line=_line_of(text, key, table),
            )


def load_settings(root: Path | None = None) -> Settings:
    """Read and validate `mayuri.toml` of the project at `root` (found from the cwd if None)."""
    root = find_root() if root is None else root.resolve()
    path = root / CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{CONFIG_NAME} not found in {root}.", hint="Run `mayuri init` there first."
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(
            f"malformed TOML: {message}.",
            path=path,
            line=int(where.group(1)) if where else None,
            column=int(where.group(2)) if where else None,
            hint="Check quoting and brackets near that spot (strings need quotes).",
        ) from None
    for table, values in data.items():
        if table not in _SCHEMA:
            raise ConfigError(
                f"unknown table [{table}] — {did_you_mean(table, _SCHEMA)}",
                path=path,
                line=_line_of(text, table),
            )
        _check_table(text, path, table, values)

    key_env = tuple(data.get("cache", {}).get("key_env", ()))
    for part in key_env:
        if part not in KEY_ENV_PARTS:
            raise ConfigError(
                f"[cache] key_env: unknown part '{part}' — {did_you_mean(str(part), KEY_ENV_PARTS)}",
                path=path,
                line=_line_of(text, "key_env", "cache"),
            )
    cache_roots = _cache_roots(text, path, root, data.get("cache", {}).get("roots", []))
    store = data.get("store", {})
    store_path = Path(os.path.expanduser(store.get("path", ".mayuri")))
    sched = data.get("scheduler", {})
    if sched.get("max_parallel", 1) < 1:
        raise ConfigError(
            "[scheduler] max_parallel must be at least 1.",
            path=path,
            line=_line_of(text, "max_parallel", "scheduler"),
        )
    users = data.get("user", {})
    return Settings(
        root=root,
        name=data.get("project", {}).get("name", root.name),
        store=StoreSettings(
            path=store_path if store_path.is_absolute() else root / store_path,
            allow_network_fs=store.get("allow_network_fs", False),
            busy_timeout=float(store.get("busy_timeout", 30.0)),
        ),
        scheduler=SchedulerSettings(
            max_parallel=sched.get("max_parallel", os.cpu_count() or 1),
            gpus=sched.get("gpus", "all"),
            poll_interval=float(sched.get("poll_interval", 0.05)),
            kill_grace=float(sched.get("kill_grace", 10.0)),
            max_plan=sched.get("max_plan", 100_000),
        ),
        key_env=key_env,
        cache_roots=cache_roots,
        gc=_gc_settings(text, path, data.get("gc", {})),
        # Looked up only when there are overrides: the login name can cost a password-database read.
        user_overrides=dict(users.get(current_user(), {})) if users else {},
        keys=dict(data.get("keys", {})),
        configs=root / os.path.expanduser(data.get("project", {}).get("configs", "configs")),
        executor=_executor_settings(text, path, data.get("executor", {})),
    )


def _executor_settings(text: str, path: Path, table: dict[str, Any]) -> ExecutorSettings:
    """`[executor]`: its default checked as a name (whether one is registered is checked before a run)."""
    default = table.get("default", "local")
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", default):
        raise ConfigError(f"[executor] default must name an executor (like \"local\"), not {default!r}.",
                          path=path, line=_line_of(text, "default", "executor"))
    return ExecutorSettings(default, {k: dict(v) for k, v in table.items() if isinstance(v, dict)})


def _cache_roots(text: str, path: Path, root: Path, roots: list[Any]) -> tuple[Path, ...]:
    """`[cache] roots` as absolute folders (`~` expanded, relative ones from the project folder)."""
    folders = []
    for entry in roots:
        if not isinstance(entry, str) or not entry.strip():
            raise ConfigError(
                f"[cache] roots must list folder paths as strings, not {entry!r}.",
                path=path,
                line=_line_of(text, "roots", "cache"),
                hint='For example: roots = ["/data/shared", "~/datasets"]',
            )
        folder = Path(os.path.expanduser(entry))
        folders.append(folder if folder.is_absolute() else root / folder)
    return tuple(folders)


def current_user() -> str:
    """The login name recorded with runs (falls back to the uid when there is none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
