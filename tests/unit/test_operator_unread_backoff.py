"""Reports left unread by a reconcile's bound are gone on with at once while passes read some, and
with a doubling delay, up to progressSeconds, while they read none (round 5's N-12: a resource whose
reports could not be read was reconciled ten times a second for as long as it lasted)."""

from __future__ import annotations

import pytest

from genfab.operator.controller import UNREAD_AGAIN_SECONDS, idle_passes, unread_again_after


@pytest.mark.parametrize(("before", "reports_left", "read_some", "gates_left", "after"), [
    (None, False, False, False, None),  # nothing left: forgotten
    (3, False, True, False, None),
    (None, True, True, False, 0),  # a pass that read some: on at once
    (5, True, True, False, 0),
    (None, True, False, False, 1),  # a pass that read none: one idle pass
    (4, True, False, False, 5),
    (4, True, False, True, 5),  # the gates' own bound does not reset the reports' count
    (2, False, False, True, 0),  # only the gates left: their reader paces itself
])
def test_idle_passes(before: int | None, reports_left: bool, read_some: bool, gates_left: bool,
                     after: int | None) -> None:
    assert idle_passes(before, reports_left, read_some, gates_left) == after


@pytest.mark.parametrize(("idle", "seconds"), [
    (0, UNREAD_AGAIN_SECONDS), (1, 2 * UNREAD_AGAIN_SECONDS), (3, 8 * UNREAD_AGAIN_SECONDS), (7, 10.0),
    (10_000, 10.0),  # no overflow however long it lasts
])
def test_the_delay_doubles_up_to_the_progress_period(idle: int, seconds: float) -> None:
    assert unread_again_after(idle, longest=10.0) == pytest.approx(seconds)
