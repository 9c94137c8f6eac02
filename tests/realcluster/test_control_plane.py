"""genfab as a lab installs it, on a real control plane: the chart's RBAC under
OwnerReferencesPermissionEnforcement, and a server without the Job features genfab needs (Kubernetes 1.20
has no Indexed Jobs), said once at start and in each resource's status, with no Job created."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from genfab.operator.access import OBSERVE_ACCESS, OPERATOR_ACCESS
from tests.emulator.conftest import make_scenejob
from tests.realcluster.conftest import RELEASE_NAMESPACE, Installed, tenant

pytestmark = pytest.mark.realcluster
NAMED = {"secrets": None, "serviceaccounts": "genfab-stage"}
TEST_AS_OPERATOR = "genfab-tests/as-the-operator"
"""The user agent of a test's own requests made with the operator's token: the audit test leaves them out."""
"""Resources the chart grants by name only: the name asked for (None: the chart's defaults name no Secret)."""


def can(installed: Installed, group: str, resource: str, verb: str, namespace: str | None) -> dict[str, Any]:
    """`kubectl auth can-i` for the operator's ServiceAccount: the API server's SubjectAccessReview."""
    plural, _, sub = resource.partition("/")
    attrs: dict[str, Any] = {"group": group, "resource": plural, "verb": verb,
                             **({"subresource": sub} if sub else {}), **({"namespace": namespace} if namespace else {})}
    if NAMED.get(plural):
        attrs["name"] = NAMED[plural]
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": installed.user, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{RELEASE_NAMESPACE}",
                                           "system:authenticated"],
        "resourceAttributes": attrs}}
    resp = installed.cluster.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    assert resp.status_code == 201, resp.text
    return dict(resp.json()["status"])


def test_the_charts_service_account_may_do_every_request_the_operator_makes(installed: Installed) -> None:
    ns = tenant(installed.cluster, "can-i")
    asked = [(g, r, v, ns) for (g, r), verbs in OPERATOR_ACCESS.items() for v in sorted(verbs)
             if not (r == "secrets" and NAMED["secrets"] is None)]
    asked += [(g, r, v, None) for (g, r), verbs in OBSERVE_ACCESS.items() for v in sorted(verbs)]
    denied = [(g, r, v, can(installed, g, r, v, n).get("reason", "")) for g, r, v, n in asked
              if not can(installed, g, r, v, n).get("allowed")]
    assert not denied, f"the chart's RBAC does not allow: {denied}"
    # and nothing more than that: a stage Pod's rights are not the operator's to hand out
    assert not can(installed, "", "pods", "create", ns).get("allowed")
    assert not can(installed, "", "secrets", "list", ns).get("allowed")


def test_a_child_whose_owner_blocks_deletion_is_created_as_the_operator(installed: Installed, tmp_path: Path) -> None:
    """OwnerReferencesPermissionEnforcement: an ownerReference with blockOwnerDeletion takes update on the
    owner's finalizers. Without it in the chart every child create was refused with 403. The plugin maps the
    owner's kind through the server's discovery, which learns a new CRD's kind some seconds after it is
    served: until then it refuses with "cannot find RESTMapping" (also 403), and the operator's next
    reconcile tries again, as this does; a refusal for want of the right is never retried."""
    cluster = installed.cluster
    ns = tenant(cluster, "owners")
    doc = make_scenejob(tmp_path, samples=1)
    doc["metadata"]["namespace"] = ns
    doc["spec"]["suspend"] = True
    resp = cluster.apply(doc)
    assert resp.status_code == 201, resp.text
    owner = resp.json()["metadata"]
    token = cluster.service_account_token(RELEASE_NAMESPACE, "genfab")
    child = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "child", "namespace": ns, "ownerReferences": [{
            "apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "name": owner["name"], "uid": owner["uid"],
            "controller": True, "blockOwnerDeletion": True}]}, "data": {"a": "b"}}
    deadline = time.monotonic() + 90
    with requests.Session() as as_operator:  # its token alone (the admin session's certificate would win)
        as_operator.trust_env = False
        while True:
            answer = as_operator.post(f"{cluster.url}/api/v1/namespaces/{ns}/configmaps", json=child,
                                      verify=str(cluster.certs["ca"]), headers={"Authorization": f"Bearer {token}",
                                               "User-Agent": TEST_AS_OPERATOR},
                                      timeout=30)
            if answer.status_code != 403 or "cannot find RESTMapping" not in answer.text \
                    or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert answer.status_code == 201, answer.text


def test_a_server_without_indexed_jobs_is_said_at_start_and_in_the_status_and_no_job_is_made(
        installed: Installed, tmp_path: Path) -> None:
    """Kubernetes 1.20 stores a Job without completionMode, backoffLimitPerIndex, podFailurePolicy,
    podReplacementPolicy, suspend and ttlSecondsAfterFinished, and runs it non-indexed: before, genfab
    created the Jobs and marked the stage Succeeded with 0 of its samples."""
    cluster = installed.cluster
    ns = tenant(cluster, "old-server")
    doc = make_scenejob(tmp_path, samples=3)
    doc["metadata"]["namespace"] = ns
    assert cluster.apply(doc).status_code == 201
    path = f"/apis/genfab.dev/v1alpha1/namespaces/{ns}/scenejobs/{doc['metadata']['name']}"
    status = cluster.wait("a Stalled status", lambda: (
        (cluster.get(path) or {}).get("status") or {}).get("conditions") and cluster.get(path)["status"], timeout=30)
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "ClusterUnsupported")
    assert stalled["message"].startswith("this cluster's API server (Kubernetes v1.20.2) does not keep "
                                         "spec.completionMode (Indexed Jobs")
    assert "need Kubernetes 1.29 or newer" in stalled["message"]
    assert status.get("phase") != "Succeeded"
    time.sleep(2)  # a few more reconciles: still nothing made
    assert cluster.get(f"/apis/batch/v1/namespaces/{ns}/jobs")["items"] == []
    assert [c["metadata"]["name"] for c in cluster.get(f"/api/v1/namespaces/{ns}/configmaps")["items"]] == [
        "kube-root-ca.crt"]  # the control plane's own (its root CA publisher), none of genfab's
    log = installed.operator.logs()  # every start of the tier's operator so far (another test may restart it)
    said = [line for line in log.splitlines() if "does not keep spec.completionMode" in line]
    assert len(said) == log.count("Activity 'startup' succeeded") >= 1, said  # once a start, at the start


def test_the_operators_requests_are_never_refused(installed: Installed) -> None:
    """The audit log of the API server: every request the operator made so far in the tier (start, watches,
    the dry run, status writes) was allowed. A test's own requests with the operator's token (the owners
    test's retries while the server learns a new CRD's kind) are not the operator's. One refusal is the
    server's, not RBAC's: an Event posted into a namespace the lifecycle test deleted just before (RBAC
    allowed it; NamespaceLifecycle admission refuses new objects in a terminating namespace), when that
    test ran first. A server error (5xx) on an allowed request that was made again with success is not a
    refusal either (seen once in CI: the four start-up lists of an operator, 500 together)."""
    audit = installed.cluster.audit()
    events = [e for e in audit if e["user"]["username"] == installed.user
              and e.get("userAgent") != TEST_AS_OPERATOR]  # the owners test's own retries, not the operator's
    assert events, "the audit log holds none of the operator's requests"
    deleted = {e["objectRef"]["name"]: e["requestReceivedTimestamp"] for e in audit
               if e["verb"] == "delete" and (e.get("objectRef") or {}).get("resource") == "namespaces"
               and e["responseStatus"].get("code") == 200}

    def allowed(e: dict[str, Any]) -> bool:
        return (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "allow"

    def terminating(e: dict[str, Any]) -> bool:
        ns = (e.get("objectRef") or {}).get("namespace")
        return allowed(e) and ns in deleted and e["requestReceivedTimestamp"] >= deleted[ns]

    def answered_later(e: dict[str, Any]) -> bool:
        """The same request succeeded after it: kopf's retry, or the list of the operator started next."""
        return any(later["verb"] == e["verb"] and later["requestURI"] == e["requestURI"]
                   and later["requestReceivedTimestamp"] > e["requestReceivedTimestamp"]
                   and later["responseStatus"].get("code", 200) < 400 for later in events)

    def servers_fault(e: dict[str, Any]) -> bool:
        """A 5xx on an allowed request is the server's (a slow etcd under CI's load; a list whose client, an
        operator the tier stopped, went away: 'context canceled'), not a refusal, once it was made again."""
        return e["responseStatus"].get("code", 200) >= 500 and allowed(e) and answered_later(e)
    refused = [(e["verb"], e["requestURI"], e["responseStatus"].get("code"), e["responseStatus"].get("message"))
               for e in events
               if e["responseStatus"].get("code", 200) >= 400 and e["responseStatus"].get("code") not in (404, 409)
               and not terminating(e) and not servers_fault(e)]
    assert refused == []


def test_pods_refused_by_a_quota_are_read_as_the_job_controller_says_it(installed: Installed, tmp_path: Path) -> None:
    """Kubernetes' Job controller, meeting a ResourceQuota of `pods: 0`: one FailedCreate Event on the Job
    and no Job status (no startTime). genfab's Jobs cannot run on 1.20, so what the operator does with it is
    tested on the emulator, which writes the same Event (`failed_create_event`, compared here); genfab's own
    reader (`PodRefusals`) finds it on this server as the chart's ServiceAccount."""
    from datetime import UTC, datetime, timedelta

    from genfab.operator.connection import load_connection
    from genfab.operator.kube import Kube
    from genfab.operator.observe import job_view
    from genfab.operator.pod_refusals import PodRefusals
    from tests.emulator.kubelet import failed_create_event
    from tests.emulator.test_refusals import QUOTA

    cluster = installed.cluster
    ns = tenant(cluster, "quota")
    assert cluster.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-pods", "namespace": ns},
                          "spec": {"hard": {"pods": "0"}}}).status_code == 201
    cluster.wait("the quota counted", lambda: (cluster.get(f"/api/v1/namespaces/{ns}/resourcequotas/no-pods") or {})
                 .get("status", {}).get("hard"))
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "refused", "namespace": ns},
           "spec": {"completions": 2, "parallelism": 2, "template": {"spec": {
               "restartPolicy": "Never", "containers": [{"name": "stage", "image": "genfab-stage"}]}}}}
    assert cluster.apply(job).status_code == 201
    selector = "involvedObject.kind%3DJob,involvedObject.name%3Drefused,reason%3DFailedCreate"
    (event,) = cluster.wait("the FailedCreate Event", lambda: cluster.get(
        f"/api/v1/namespaces/{ns}/events?fieldSelector={selector}")["items"], timeout=30)
    stored = cluster.get(f"/apis/batch/v1/namespaces/{ns}/jobs/refused")
    assert stored is not None and not (stored.get("status") or {}).get("startTime")
    emulated = failed_create_event(stored, "x", QUOTA)
    assert set(event) == set(emulated) and set(event["involvedObject"]) == set(emulated["involvedObject"])
    assert [event[k] for k in ("reason", "type", "source")] == [emulated[k] for k in ("reason", "type", "source")]
    assert event["message"] == f'Error creating: pods "{event["message"].split(chr(34))[1]}" is forbidden: {QUOTA}'
    token = cluster.service_account_token(RELEASE_NAMESPACE, "genfab")
    kube = Kube(load_connection({"KUBECONFIG": str(cluster.kubeconfig(tmp_path / "sa.kubeconfig", token=token))}))
    later = datetime.now(UTC) + timedelta(seconds=10)  # past the grace a Job gets to make its first Pods
    found = PodRefusals(kube, 1.0).read(ns, [stored], {"refused": job_view(stored)}, {}, later)
    assert found == {"refused": event["message"]}
