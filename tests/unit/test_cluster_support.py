"""What the cluster keeps of genfab's Jobs (genfab.operator.cluster_support): the fields compared, the
one line said, and the list of fields kept in step with the Job builder."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.operator.cluster_support import JOB_FEATURES, MINIMUM_VERSION, dropped, probe_job, unsupported_message
from tests.unit.test_operator_builders import job_for

STAGE_JOB = job_for()


def without(job: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {**job, "spec": {k: v for k, v in job["spec"].items() if k not in fields}}


@pytest.mark.parametrize(("kept", "lost"), [
    (STAGE_JOB, []),
    # Kubernetes 1.20: none of the Job features after it
    (without(STAGE_JOB, "completionMode", "backoffLimitPerIndex", "podFailurePolicy", "podReplacementPolicy",
             "suspend", "ttlSecondsAfterFinished"),
     ["completionMode", "backoffLimitPerIndex", "podFailurePolicy", "podReplacementPolicy", "suspend",
      "ttlSecondsAfterFinished"]),
    # a feature gate switched off
    (without(STAGE_JOB, "backoffLimitPerIndex"), ["backoffLimitPerIndex"]),
    # a webhook that rewrites the mode
    ({**STAGE_JOB, "spec": {**STAGE_JOB["spec"], "completionMode": "NonIndexed"}}, ["completionMode"]),
    # defaults the server adds are no loss
    ({**STAGE_JOB, "spec": {**STAGE_JOB["spec"], "manualSelector": False}}, []),
])
def test_dropped_names_each_field_sent_and_not_kept(kept: dict[str, Any], lost: list[str]) -> None:
    assert dropped(STAGE_JOB, kept) == lost


def test_every_field_listed_is_one_the_stage_job_sets_and_the_probe_sends() -> None:
    """The list follows the builder: a field the Job builder stops setting (or starts) shows here."""
    assert set(JOB_FEATURES) <= set(STAGE_JOB["spec"])
    assert set(JOB_FEATURES) <= set(probe_job("default")["spec"])
    assert dropped(probe_job("default"), probe_job("default")) == []


def test_the_message_names_each_field_its_release_and_the_minimum() -> None:
    line = unsupported_message(["completionMode", "podReplacementPolicy"], "v1.20.2")
    assert line.startswith("this cluster's API server (Kubernetes v1.20.2) does not keep spec.completionMode "
                           "(Indexed Jobs, on by default since 1.24), spec.podReplacementPolicy")
    assert f"need Kubernetes {MINIMUM_VERSION} or newer" in line and "\n" not in line
    assert MINIMUM_VERSION == "1.29"
