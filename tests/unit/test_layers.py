"""The layer rules of the house, read from the source (every import statement, at any depth).

- the dashboard (`tui/`) never imports the scheduler or the executors;
- the store (`mayuri/store/`) never imports the scheduler, the executors or the dashboard;
- no module of `mayuri/` imports textual, torch, transformers, pynvml or an executor's engine
  (ray, submitit) at module level: they load only where a command or a job needs them
  (`mayuri/gpu.py` alone talks to pynvml, on first use). `mayuri/integrations/` is exempt: each
  of its modules is the binding to one library, imported only by a user's script that has it.

A static reading catches an import inside a function that no test happens to call; the tests in
tests/tui/test_boundaries.py check what a real import loads.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("textual", "textual_plotext", "plotext", "torch", "transformers", "pynvml", "ray", "submitit")


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imported(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        yield node.module
        yield from (f"{node.module}.{alias.name}" for alias in node.names)


def all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {name for node in ast.walk(tree) for name in _imported(node)}


def module_level_imports(path: Path) -> set[str]:
    """Imports run when the module is imported: top-level statements, try/if bodies included,
    `if TYPE_CHECKING:` blocks excluded."""
    names: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            names.update(_imported(node))
            if isinstance(node, (ast.If, ast.Try, ast.With)):
                for block in ("body", "orelse", "finalbody"):
                    visit(getattr(node, block, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return names


def _starts(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", _python_files(REPO / "tui"), ids=lambda p: str(p.relative_to(REPO)))
def test_the_dashboard_never_imports_the_scheduler_or_executors(path: Path) -> None:
    bad = [n for n in all_imports(path) if _starts(n, ("mayuri.scheduler", "mayuri.executors"))]
    assert not bad, f"{path}: the dashboard reads the store through mayuri.store queries, not {bad}"


@pytest.mark.parametrize("path", _python_files(REPO / "mayuri" / "store"), ids=lambda p: p.name)
def test_the_store_never_imports_the_scheduler_executors_or_dashboard(path: Path) -> None:
    bad = [n for n in all_imports(path) if _starts(n, ("mayuri.scheduler", "mayuri.executors", "mayuri.tui"))]
    assert not bad, f"{path}: the store is below the scheduler and the dashboard, it imports {bad}"


CORE = [p for p in _python_files(REPO / "mayuri") if "integrations" not in p.relative_to(REPO).parts]


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(REPO)))
def test_the_core_loads_no_heavy_library_at_module_level(path: Path) -> None:
    bad = [n for n in module_level_imports(path) if _starts(n, HEAVY)]
    assert not bad, f"{path}: imports {bad} at module level; import it where it is used"


def test_the_rules_see_a_violation(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("import os\ntry:\n    import torch\nexcept ImportError:\n    pass\n"
                       "def f():\n    from mayuri.scheduler.loop import Scheduler\n", encoding="utf-8")
    assert "torch" in module_level_imports(planted)
    assert "mayuri.scheduler.loop" in all_imports(planted)
    assert "mayuri.scheduler.loop" not in module_level_imports(planted)
