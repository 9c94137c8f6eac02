"""The Lease step a replica takes (genfab.operator.leader.next_step): a table."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.operator.leader import next_step


def lease(holder: str, duration: int = 15) -> dict[str, Any]:
    return {"spec": {"holderIdentity": holder, "leaseDurationSeconds": duration}}


@pytest.mark.parametrize(("record", "unchanged_for", "step"), [
    (None, 0.0, "create"),                   # no Lease yet
    (lease("me"), 100.0, "renew"),           # its own, however old
    (lease("other"), 3.0, "wait"),           # another replica renews it
    (lease("other"), 15.0, "wait"),          # exactly the duration: not yet
    (lease("other"), 15.1, "take"),          # unrenewed past its duration: the holder is gone
    (lease(""), 0.0, "take"),                # given up on a clean stop: at once
    (lease("other", duration=1), 1.5, "take"),
])
def test_the_step_follows_the_holder_and_how_long_its_record_went_unchanged(
        record: dict[str, Any] | None, unchanged_for: float, step: str) -> None:
    assert next_step(record, "me", unchanged_for) == step
