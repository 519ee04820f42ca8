"""The dashboard on stores it cannot simply read: newer, older, and changing under it."""

from __future__ import annotations

import sqlite3

from textual.widgets import Static

from mayuri.tui.screens.store_error_screen import StoreErrorScreen
from mayuri.tui.widgets.runs.run_table import RunTable
from tests.conftest import Project
from tests.store.store_workers import make_old_store
from tests.tui.conftest import app_for, runs_loaded, text_of, wait_until


async def test_a_store_newer_than_mayuri_gives_a_clear_message_and_exit_code_2(project: Project) -> None:
    with sqlite3.connect(project.db) as connection:
        connection.execute("PRAGMA user_version = 999")
    app = app_for(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, StoreErrorScreen)
                         and bool(app.screen.query("#store-error-message")), what="the error screen")
        message = text_of(app.screen.query_one("#store-error-message", Static))
        assert "schema version 999" in message and "Upgrade Mayuri" in message
        await pilot.press("q")
    assert app.return_code == 2


async def test_a_store_of_an_older_schema_is_upgraded_with_a_message(project: Project) -> None:
    store_root = project.root / ".mayuri"
    for name in ("mayuri.db", "mayuri.db-wal", "mayuri.db-shm"):
        (store_root / name).unlink(missing_ok=True)
    old_ids = make_old_store(store_root, runs=2)
    app = app_for(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await runs_loaded(pilot)
        table = screen.query_one(RunTable)
        assert sorted(table.row_at(i).id for i in range(table.total)) == sorted(old_ids)  # type: ignore[union-attr]
        assert any("upgraded" in str(n.message) and "schema version 1" in str(n.message)
                   for n in app._notifications)


async def test_a_read_only_store_is_browsed_with_a_notice(project: Project) -> None:
    from tests.store.unix_users import read_only_mount

    project.write("exp.yaml", "name: ro\njobs:\n  a: {run: python -c pass}\n")
    assert project.mayuri("run", "exp.yaml").returncode == 0
    with read_only_mount(project.root / ".mayuri"):
        app = app_for(project.root)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await runs_loaded(pilot)
            assert screen.query_one(RunTable).total == 1
            assert any("read-only" in str(n.title) for n in app._notifications)
            await pilot.press("q")
        app.store.close()
