"""When the operator looks for a Job's refused Pods, and which refusal it reports
(genfab.operator.pod_refusals): tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from genfab.operator.observe import job_view, parse_time
from genfab.operator.pod_refusals import newest_message, waiting_for_pods

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POD = {"metadata": {"name": "p"}, "status": {"phase": "Pending"}}


def job(age: float = 60.0, **status: Any) -> dict[str, Any]:
    created = (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"name": "j", "creationTimestamp": created}, "spec": {"completions": 2},
            "status": status}


@pytest.mark.parametrize(("body", "pods", "waiting"), [
    (job(), [], True),                                       # a minute without a Pod
    (job(age=1.0), [], False),                               # within the grace: the controller is at it
    (job(), [POD], False),                                   # a Pod exists
    (job(active=1), [], False),
    (job(ready=1), [], False),                               # a Pod ran
    (job(conditions=[{"type": "Complete", "status": "True"}]), [], False),
    ({**job(), "spec": {"completions": 2, "suspend": True}}, [], False),
])
def test_a_job_is_looked_at_only_while_its_pods_should_exist_and_do_not(body: dict[str, Any],
                                                                       pods: list[Any], waiting: bool) -> None:
    assert waiting_for_pods(job_view(body), pods, parse_time(body["metadata"]["creationTimestamp"]), NOW) == waiting


def test_the_newest_event_is_the_one_reported() -> None:
    events = [{"message": "old", "lastTimestamp": "2026-11-29T11:00:00Z"},
              {"message": "new", "lastTimestamp": "2026-11-29T11:59:00Z"},
              {"message": "middle", "lastTimestamp": "2026-11-29T11:30:00Z"}]
    assert newest_message(events) == "new"
    assert newest_message([]) is None


def test_a_resumed_job_counts_its_start_deadline_from_its_resumption() -> None:
    body = job(age=3600.0, conditions=[{"type": "Suspended", "status": "False",
                                        "lastTransitionTime": "2026-11-29T11:59:30Z"}])
    assert job_view(body).created == "2026-11-29T11:59:30Z"
    assert job_view(job()).created == job()["metadata"]["creationTimestamp"]
