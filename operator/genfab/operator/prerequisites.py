"""What must exist in a resource's namespace before the operator creates a stage Job there. Pure.

Stage Pods run as the chart's stage ServiceAccount, read their storage credentials from a Secret in
their own namespace and, with `networkPolicy.enabled`, are confined by the chart's stage
NetworkPolicy. The chart renders these into every watched namespace (namespaced mode) or into
`stages.tenantNamespaces` (cluster-wide mode); a namespace it does not know about may lack them. A
Job there would fail late (a missing ServiceAccount stops the Job controller from creating Pods; a
missing Secret leaves Pods in CreateContainerConfigError) or, without its NetworkPolicy, run
unconfined. So the operator checks first and, when something is missing, creates nothing and sets
a Stalled condition naming each missing object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from genfab.api.common import CommonSpec, Storage
from genfab.operator.policy import s3_fields

REASON = "NamespaceNotReady"


@dataclass(frozen=True)
class Prerequisite:
    api_version: str
    plural: str
    kind: str
    name: str
    why: str
    """What it is for, as the user reads it in the condition."""


def prerequisites(spec: CommonSpec, storage: Storage | None, service_account: str,
                  network_policy: str | None) -> list[Prerequisite]:
    """The objects a stage Job of this resource needs in its namespace (`storage` is the effective
    one: the resource's own, else the chart's default)."""
    needed = [Prerequisite("v1", "serviceaccounts", "ServiceAccount", service_account,
                           "the account stage Pods run as")]
    if storage is not None and storage.secret_ref is not None and s3_fields(spec):  # any s3:// URI, models included
        where = "spec.storage.secretRef" if spec.storage is not None else "the chart's storage.secret.name"
        needed.append(Prerequisite("v1", "secrets", "Secret", storage.secret_ref.name,
                                   f"storage credentials, from {where}"))
    if network_policy:
        needed.append(Prerequisite("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", network_policy,
                                   "confines stage Pods' traffic (chart value networkPolicy.enabled)"))
    return needed


def not_ready_message(namespace: str, missing: Sequence[Prerequisite]) -> str:
    """One line naming every missing object and how an admin provides it."""
    what = "; ".join(f"{p.kind} {p.name!r} ({p.why})" for p in missing)
    return (f"namespace {namespace} is not ready for genfab stages, missing: {what}. No Job was created. An admin "
            f"creates them, or lists the namespace in the chart value stages.tenantNamespaces (cluster-wide mode) or "
            f"operator.watchNamespaces, whose namespaces the chart prepares")
