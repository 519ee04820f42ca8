"""RELIABILITY.md test 2: no write transaction is ever DEFERRED, at run time and in the source.

A deferred transaction that reads and then writes must upgrade its lock, and
SQLite answers "database is locked" at once instead of waiting: under load
such writes fail (the write storm shows it). Two guards: a trace of every
statement a real `mayuri run` sends to SQLite, and a lint over the sources.
"""

from __future__ import annotations

import ast
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
from click.testing import CliRunner

from mayuri.store import open_store
from tests.conftest import Project
from tests.store.store_workers import integrity, make_old_store

REPO = Path(__file__).resolve().parents[2]
WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "ALTER", "DROP")


# -- runtime guard ------------------------------------------------------------


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, str]]]:
    """Every statement any store connection of this process runs, as (connection id, SQL)."""
    statements: list[tuple[int, str]] = []
    original = peewee.SqliteDatabase._connect

    def connect(self: peewee.SqliteDatabase) -> sqlite3.Connection:
        connection = original(self)
        key = id(connection)
        connection.set_trace_callback(lambda sql: statements.append((key, sql)))
        return connection

    monkeypatch.setattr(peewee.SqliteDatabase, "_connect", connect)
    yield statements


def transaction_problems(statements: list[tuple[int, str]]) -> list[str]:
    """BEGINs that are not IMMEDIATE, and writes made outside a transaction."""
    problems = []
    open_transactions: set[int] = set()
    for key, sql in statements:
        text = " ".join(sql.split()).upper()
        if text.startswith("--"):
            continue  # a statement of a trigger, reported inside its parent
        if text.startswith("BEGIN"):
            if text.rstrip(";") != "BEGIN IMMEDIATE":
                problems.append(f"not immediate: {sql}")
            open_transactions.add(key)
        elif text.startswith(("COMMIT", "END", "ROLLBACK")) and not text.startswith("ROLLBACK TO"):
            open_transactions.discard(key)
        elif (text.startswith(WRITE_VERBS) or text.startswith("PRAGMA USER_VERSION =")) \
                and key not in open_transactions:
            problems.append(f"write outside a transaction: {sql}")
    return problems


def test_the_checker_catches_deferred_and_bare_writes() -> None:
    bad = [(1, "BEGIN"), (1, "INSERT INTO run VALUES (1)"), (1, "COMMIT"), (2, "UPDATE run SET x = 1")]
    assert transaction_problems(bad) == ["not immediate: BEGIN", "write outside a transaction: UPDATE run SET x = 1"]
    good = [(1, "BEGIN IMMEDIATE"), (1, "SAVEPOINT a"), (1, "INSERT INTO run VALUES (1)"), (1, "COMMIT")]
    assert transaction_problems(good) == []


EXPERIMENT = """
    name: traced
    params: {n: 1}
    jobs:
      prep:
        run: python prep.py ${n}
      train:
        run: python train.py
        depends_on: {prep: {}}
"""


def test_a_real_run_begins_every_transaction_immediate(
    project: Project, traced: list[tuple[int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mayuri.cli import cli

    project.write("prep.py", "import sys\nopen('data.txt', 'w').write(sys.argv[1])\nprint('prep')\n")
    project.write("helper.py", "VALUE = 2\n")
    project.write("train.py", "import helper\nprint(open('data.txt').read(), helper.VALUE)\n")
    project.write("exp.yaml", EXPERIMENT)
    monkeypatch.chdir(project.root)
    for args in (["run", "exp.yaml"], ["run", "exp.yaml"], ["run", "exp.yaml", "n=2"], ["runs"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    begins = [sql for _, sql in traced if sql.upper().startswith("BEGIN")]
    assert len(begins) >= 6, "the run wrote less than expected: is the trace hooked up?"
    assert transaction_problems(traced) == []
    assert integrity(project.db) == "ok"


def test_creating_and_upgrading_a_store_begins_immediate(tmp_path: Path, traced: list[tuple[int, str]]) -> None:
    open_store(tmp_path / "fresh").close()
    make_old_store(tmp_path / "old")
    traced.clear()  # the old store is built by the test, not by Mayuri
    open_store(tmp_path / "old").close()
    assert any("ALTER TABLE" in sql for _, sql in traced)
    assert transaction_problems(traced) == []
    assert integrity(tmp_path / "old" / "mayuri.db") == "ok"


# -- source lint --------------------------------------------------------------


def _sql_prefix(node: ast.AST) -> str | None:
    """The leading text of a string expression (constant, f-string, or a + / implicit concatenation)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        return _sql_prefix(node.values[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _sql_prefix(node.left)
    return None


def _is_write_sql(text: str | None) -> bool:
    return text is not None and text.lstrip().upper().startswith(WRITE_VERBS)


def _is_write_block(item: ast.withitem) -> bool:
    call = item.context_expr
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "write_transaction":
        return True  # store.plain_sqlite's BEGIN IMMEDIATE on a plain connection (the metrics writer's)
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
        return False
    if call.func.attr == "write" and not call.args:
        receiver = ast.unparse(call.func.value)
        return receiver.split(".")[-1].endswith("store")
    return call.func.attr == "atomic" and _lock_type(call) == "IMMEDIATE"


def _lock_type(call: ast.Call) -> str | None:
    arguments = list(call.args[:1]) + [k.value for k in call.keywords if k.arg == "lock_type"]
    if not arguments:
        return None
    value = arguments[0]
    return value.value.upper() if isinstance(value, ast.Constant) and isinstance(value.value, str) else "?"


class _Lint(ast.NodeVisitor):
    """Finds deferred transactions and writes outside `store.write()` in one module."""

    MODEL_WRITES = frozenset({
        "insert", "insert_many", "insert_from", "replace", "replace_many", "update", "delete",
        "create", "bulk_create", "bulk_update", "get_or_create", "delete_by_id", "set_by_id",
    })

    def __init__(self, name: str, models: set[str], in_store_package: bool) -> None:
        self.name = name
        self.models = models
        self.in_store_package = in_store_package
        self.depth = 0
        self.functions: list[str] = []
        self.sql_names: dict[str, str] = {}
        self.problems: list[str] = []
        # Writes outside a write block, by enclosing function: fine only if
        # that function is itself only ever called inside write blocks.
        self.unguarded: dict[str, list[str]] = {}
        # (called name, calling function or "", whether inside a write block)
        self.calls: list[tuple[str, str, bool]] = []

    def _report(self, node: ast.AST, what: str) -> None:
        self.problems.append(f"{self.name}:{getattr(node, 'lineno', '?')}: {what}")

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # A nested function runs later, maybe outside the block it is defined in.
        depth, self.depth = self.depth, 0
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()
        self.depth = depth

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_With(self, node: ast.With) -> None:
        writes = any(_is_write_block(item) for item in node.items)
        self.depth += writes
        self.generic_visit(node)
        self.depth -= writes

    def visit_Assign(self, node: ast.Assign) -> None:
        text = _sql_prefix(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name) and _is_write_sql(text):
                self.sql_names[target.id] = text or ""
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.value.strip().upper().rstrip(";") in ("BEGIN", "BEGIN DEFERRED"):
            self._report(node, "a deferred BEGIN in SQL text")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        self.calls.append((called, self.functions[-1] if self.functions else "", self.depth > 0))
        if isinstance(func, ast.Attribute):
            if func.attr in ("atomic", "transaction") and _lock_type(node) != "IMMEDIATE":
                self._report(node, f".{func.attr}() without 'IMMEDIATE'")
            elif func.attr == "manual_commit":
                self._report(node, ".manual_commit() (transactions must be store.write())")
            elif func.attr in self.MODEL_WRITES and isinstance(func.value, ast.Name) \
                    and func.value.id in self.models:
                self._write(node, f"{func.value.id}.{func.attr}()")
            elif func.attr in ("execute", "executemany", "execute_sql", "executescript") and node.args:
                first = node.args[0]
                text = self.sql_names.get(first.id) if isinstance(first, ast.Name) else _sql_prefix(first)
                if _is_write_sql(text):
                    self._write(node, f"SQL {' '.join((text or '').split()[:3])}...")
        self.generic_visit(node)

    def _write(self, node: ast.AST, what: str) -> None:
        if not self.in_store_package:
            self._report(node, f"{what} outside the store package")
        elif not self.depth:
            where = self.functions[-1] if self.functions else ""
            self.unguarded.setdefault(where, []).append(f"{self.name}:{node.lineno}: {what} outside store.write()")


def model_names(sources: dict[str, str]) -> set[str]:
    """Every class that derives from a peewee model in the given sources (by base class name)."""
    names = {"Model", "BaseModel"}
    changed = True
    while changed:
        changed = False
        for text in sources.values():
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ClassDef) and node.name not in names and any(
                    ast.unparse(base).split(".")[-1] in names for base in node.bases
                ):
                    names.add(node.name)
                    changed = True
    return names - {"Model", "BaseModel"}


def lint(sources: dict[str, str]) -> list[str]:
    """Problems in modules given as {path relative to the repository: source}."""
    models = model_names(sources)
    problems: list[str] = []
    unguarded: dict[str, list[str]] = {}
    calls: list[tuple[str, str, bool]] = []
    for name, text in sorted(sources.items()):
        checker = _Lint(name, models, in_store_package=name.startswith("mayuri/store/"))
        checker.visit(ast.parse(text))
        problems += checker.problems
        for function, found in checker.unguarded.items():
            unguarded.setdefault(function, []).extend(found)
        calls += checker.calls
    # A helper that writes (say, interning keys) is fine when every call of it,
    # by name, is inside a write block or inside another such helper.
    guarded = {f for f in unguarded if f and any(c == f for c, _, _ in calls)}
    changed = True
    while changed:
        changed = False
        for function in list(guarded):
            if any(c == function and not inside and caller not in guarded for c, caller, inside in calls):
                guarded.discard(function)
                changed = True
    for function, found in unguarded.items():
        if function not in guarded:
            problems += found
    return sorted(problems, key=lambda p: (p.split(":")[0], int(p.split(":")[1])))


def _repository_sources() -> dict[str, str]:
    files = [*sorted((REPO / "mayuri").rglob("*.py")), *sorted((REPO / "tui").rglob("*.py"))]
    return {str(path.relative_to(REPO)): path.read_text(encoding="utf-8") for path in files}


def test_sources_write_only_in_immediate_transactions() -> None:
    sources = _repository_sources()
    assert "mayuri/store/records.py" in sources
    assert lint(sources) == []


BAD_MODULES: dict[str, Any] = {
    "mayuri/store/models.py": "class BaseModel(Model): pass\nclass Run(BaseModel): pass\n",
    "mayuri/store/bad.py": """
        def deferred(store):
            with store.db.atomic():
                Run.insert(id=1).execute()
        def bare(store):
            Run.update(status='x').execute()
            store.db.execute_sql("DELETE FROM run")
            sql = "INSERT INTO run VALUES (?)"
            store.db.cursor().execute(sql, (1,))
            store.db.execute_sql("BEGIN")
        def good(store):
            with store.write():
                Run.insert(id=2).execute()
                store.db.cursor().executemany("UPDATE run SET x = ?", [(1,)])
                helper(store)
            store.db.execute_sql("SELECT count(*) FROM run")
        def helper(store):
            Run.delete().execute()
        def misused_helper(store):
            Run.create(id=3)
        def careless(store):
            misused_helper(store)
    """,
    "mayuri/scheduler/sneaky.py": """
        def elsewhere(store):
            with store.write():
                store.db.execute_sql(f"UPDATE run SET status = '{1}'")
    """,
}


def test_the_lint_catches_each_kind_of_mistake() -> None:
    problems = lint({name: textwrap.dedent(text) for name, text in BAD_MODULES.items()})
    assert problems == [
        "mayuri/scheduler/sneaky.py:4: SQL UPDATE run SET... outside the store package",
        "mayuri/store/bad.py:3: .atomic() without 'IMMEDIATE'",
        "mayuri/store/bad.py:4: Run.insert() outside store.write()",
        "mayuri/store/bad.py:6: Run.update() outside store.write()",
        "mayuri/store/bad.py:7: SQL DELETE FROM run... outside store.write()",
        "mayuri/store/bad.py:9: SQL INSERT INTO run... outside store.write()",
        "mayuri/store/bad.py:10: a deferred BEGIN in SQL text",
        "mayuri/store/bad.py:20: Run.create() outside store.write()",
    ]
