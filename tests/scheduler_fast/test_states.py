"""The state tables: every state has its transitions and its look; a change outside them raises."""

from __future__ import annotations

import pytest

from mayuri import states
from mayuri.states import (
    ATTEMPT_TRANSITIONS,
    PLAN_TRANSITIONS,
    RUN_TRANSITIONS,
    AttemptState,
    PlanState,
    RunState,
)


def test_every_state_has_a_row_and_a_look() -> None:
    for enum, table in ((RunState, RUN_TRANSITIONS), (AttemptState, ATTEMPT_TRANSITIONS),
                        (PlanState, PLAN_TRANSITIONS)):
        assert set(table) == set(enum)
        assert all(states.style(state) for state in enum), enum


def test_a_change_outside_the_table_raises_when_strict() -> None:
    states.check(PLAN_TRANSITIONS, "running", "ready")
    with pytest.raises(states.IllegalTransition, match="'succeeded' may not become 'running'"):
        states.check(PLAN_TRANSITIONS, "succeeded", "running")


def test_the_cli_and_the_dashboard_colour_a_state_alike() -> None:
    from mayuri.render import STATUS_STYLE
    from mayuri.tui.formatting import status_style

    for state in ("cancelled", "skipped", "running", "orphaned"):
        assert status_style(state) == STATUS_STYLE[state] == states.style(state)
