"""Every Kubernetes API request the operator makes, by (API group, resource, verb): the one list the
chart's RBAC is checked against (tests/chart), that the emulator's request log must stay within
(tests/emulator/test_rbac.py), and that the real control plane answers `kubectl auth can-i` for as the
chart's ServiceAccount (tests/realcluster). The chart's templates/rbac.yaml grants exactly these."""

from __future__ import annotations

from genfab.api.resources import GROUP, PLURALS

Access = dict[tuple[str, str], frozenset[str]]

KINDS = tuple(PLURALS.values())
OPERATOR_ACCESS: Access = {
    **{(GROUP, plural): frozenset({"get", "list", "watch"}) for plural in KINDS},
    **{(GROUP, f"{plural}/status"): frozenset({"get", "patch"}) for plural in KINDS},
    # Each child's ownerReference sets blockOwnerDeletion: under OwnerReferencesPermissionEnforcement
    # the API server checks this right on the owner, although no request names it.
    **{(GROUP, f"{plural}/finalizers"): frozenset({"update"}) for plural in KINDS},
    ("batch", "jobs"): frozenset({"get", "list", "watch", "create", "patch", "delete"}),
    ("", "configmaps"): frozenset({"get", "create", "delete"}),
    ("", "services"): frozenset({"get", "create", "delete"}),  # headless Services of distributed training
    ("", "pods"): frozenset({"get", "list", "watch", "delete"}),
    ("", "secrets"): frozenset({"get"}),  # by name only, the storage Secrets the chart names
    ("", "events"): frozenset({"create", "list"}),  # list: a Job's FailedCreate Events (refused Pods)
    ("", "serviceaccounts"): frozenset({"get"}),  # by name only: the stage ServiceAccount
}
"""What the operator asks in every namespace it watches."""
GROUP_POLICY_ACCESS: Access = {("networking.k8s.io", "networkpolicies"): frozenset({"get", "create", "delete"})}
"""Per-process-group NetworkPolicies (the chart's `networkPolicy.processGroups`, on by default)."""
STAGE_POLICY_ACCESS: Access = {("networking.k8s.io", "networkpolicies"): frozenset({"get"})}
"""The chart's stage NetworkPolicy, checked by name before Jobs run (`networkPolicy.enabled` alone)."""
OBSERVE_ACCESS: Access = {("apiextensions.k8s.io", "customresourcedefinitions"): frozenset({"list", "watch"})}
"""kopf notices CRDs being added or removed (cluster-wide in every mode)."""
LEADER_ACCESS: Access = {("coordination.k8s.io", "leases"): frozenset({"create", "get", "update"})}
"""HA (the chart's `operator.ha`): the Lease the replicas elect the active one on, in the release namespace
(get and update by its name)."""
