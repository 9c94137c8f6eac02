"""What the API server refuses (403 from RBAC, a quota, an admission plugin; 422) stalls the resource with
the server's own message within one reconcile, and the refused request is not sent again on every event
(before: no status at all, a traceback, and the create sent again every few seconds)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import Emulator
from tests.emulator.reading import jobs, wait_status

pytestmark = pytest.mark.emulator
OWNER_REFERENCES = ('configmaps "{name}" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers to '
                    "a resource you can't set finalizers on: , <nil>")
"""The words of Kubernetes' OwnerReferencesPermissionEnforcement (kube-apiserver 1.20, tests/realcluster)."""


def stalled(st: dict) -> dict:
    return next((c for c in st.get("conditions", []) if c["type"] == "Stalled" and c["status"] == "True"), {})


def test_a_refused_child_stalls_the_resource_with_the_servers_message_and_is_not_resent(
        emu: Emulator, tmp_path: Path) -> None:
    doc = make_scenejob(tmp_path, samples=1)
    ns = doc["metadata"]["namespace"]
    message = OWNER_REFERENCES.format(name="x")
    emu.cluster.refusals[("POST configmaps", ns)] = (403, "Forbidden", message)
    try:
        started = time.monotonic()
        emu.apply(doc)
        st = wait_status(emu, doc, "Stalled", lambda st: stalled(st).get("reason") == "RefusedByServer", timeout=15)
        assert time.monotonic() - started < 5
        condition = stalled(st)
        assert message in condition["message"] and "403" in condition["message"]
        assert st.get("phase") not in ("Succeeded", "Failed")
        first = emu.cluster.refused[("POST configmaps", ns)]
        time.sleep(5)  # 25 progress periods and 2 resyncs of the tests' operator: no resend meanwhile
        assert emu.cluster.refused[("POST configmaps", ns)] == first == 1
    finally:
        emu.cluster.refusals.pop(("POST configmaps", ns), None)
    # the admin's fix shows when the spec changes (or after a minute): the stage starts
    emu.apply({**doc, "spec": {**doc["spec"], "gaussians": {"steps": 7001}}})
    emu.wait("the first Job", lambda: jobs(emu, doc), timeout=15)
    st = wait_status(emu, doc, "not stalled", lambda st: not stalled(st), timeout=15)


QUOTA = "exceeded quota: no-pods, requested: pods=1, used: pods=0, limited: pods=0"
"""kube-apiserver 1.20's words for a Pod past a ResourceQuota of `pods: 0` (tests/realcluster)."""


def test_pods_refused_by_admission_stall_the_stage_with_the_job_controllers_words(emu: Emulator,
                                                                                  tmp_path: Path) -> None:
    """The Job controller says it only in a FailedCreate Event (no condition, no startTime): before, the
    SceneJob stayed Running, Stalled False, "0/3"."""
    doc = make_scenejob(tmp_path, samples=3)
    ns = doc["metadata"]["namespace"]
    emu.kubelet.refuse_pods[ns] = QUOTA
    try:
        emu.apply(doc)
        created = emu.wait("the first Job", lambda: jobs(emu, doc), timeout=15)
        assert not (created[0].get("status") or {}).get("startTime")
        st = wait_status(emu, doc, "Stalled PodsRefused", lambda st: stalled(st).get("reason") == "PodsRefused",
                         timeout=20)
        message = stalled(st)["message"]
        assert message.startswith(f"job {created[0]['metadata']['name']}: the API server refuses its Pods: "
                                  "Error creating: pods") and QUOTA in message
        scaffold = next(s for s in st["stages"] if s["name"] == "scaffold")
        assert (scaffold["phase"], scaffold["reason"]) == ("Running", "PodsRefused")
    finally:
        emu.kubelet.refuse_pods.pop(ns, None)
    # the quota raised: the Pods are made, the stall clears and the run ends
    st = wait_status(emu, doc, "Succeeded", lambda st: st.get("phase") == "Succeeded", timeout=60)
    assert not stalled(st)


def test_the_start_deadline_fires_for_a_job_whose_pods_are_all_refused(emu: Emulator, tmp_path: Path) -> None:
    """It keyed on the Job's startTime, which the Job controller writes with its first Pod: it never fired."""
    doc = make_scenejob(tmp_path, samples=2, startDeadlineSeconds=5)  # past the refusals' 3 s grace
    ns = doc["metadata"]["namespace"]
    emu.kubelet.refuse_pods[ns] = QUOTA
    try:
        emu.apply(doc)
        st = wait_status(emu, doc, "Failed", lambda st: st.get("phase") == "Failed", timeout=60)
    finally:
        emu.kubelet.refuse_pods.pop(ns, None)
    scaffold = next(s for s in st["stages"] if s["name"] == "scaffold")
    assert scaffold["reason"] == "DeadlineExceeded"
    assert "(last: PodsRefused: " in scaffold["message"] and QUOTA in scaffold["message"]
