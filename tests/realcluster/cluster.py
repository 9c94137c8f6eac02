"""A real Kubernetes control plane, started for the tests: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler 1.20 (built by `scripts/real_cluster.sh` from Debian's sources; etcd from
`scripts/real_apiserver.sh`), on loopback ports, with a throwaway CA.

The API server runs with `--authorization-mode Node,RBAC` and the admission plugins a hardened cluster
turns on (`ADMISSION`, `OwnerReferencesPermissionEnforcement` among them); each component has its own
client certificate in the identity Kubernetes' bootstrap RBAC expects (system:kube-controller-manager,
system:kube-scheduler, system:node:<name>). The controller manager runs its real Job controller, garbage
collector, namespace controller, ResourceQuota and ServiceAccount token controllers. No kubelet: `NodeAgent`
(tests/realcluster/node.py) registers a GPU Node and moves the Pods bound to it. The API server writes every
request to an audit log (`audit()`). Test-only code.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.realserver.server import ADMIN, ETCD, REPO, RealApiServer, _certificates

BIN = REPO / ".tools" / "cluster"
APISERVER, CONTROLLER_MANAGER, SCHEDULER = (BIN / n for n in (
    "kube-apiserver", "kube-controller-manager", "kube-scheduler"))
NODE = "gpu-node-0"
ADMISSION = ("NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultTolerationSeconds,Priority,ResourceQuota,"
             "OwnerReferencesPermissionEnforcement,NodeRestriction,MutatingAdmissionWebhook,"
             "ValidatingAdmissionWebhook")
"""What a hardened cluster enables (OpenShift has OwnerReferencesPermissionEnforcement on by default)."""
IDENTITIES: dict[str, tuple[str, str | None]] = {
    **ADMIN,
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "node": (f"system:node:{NODE}", "system:nodes"),
}
WATCH_EXPIRY = ("--watch-cache=false", "--etcd-compaction-interval", "2s")
"""Watches served from etcd, compacted every 2 s: a watch away for a few seconds expires (410 Gone), as one
away for minutes does on a production server (its watch cache's window, etcd's 5-minute compaction).
(`--watch-cache-sizes scenejobs.genfab.dev#0` leaves a custom resource's watch cache on in 1.20.)"""
AUDIT_POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
                "rules": [{"level": "Metadata"}]}


def available() -> bool:
    return all(os.access(b, os.X_OK) for b in (APISERVER, CONTROLLER_MANAGER, SCHEDULER, ETCD))


def _service_account_key(folder: Path) -> tuple[Path, Path]:
    """The key pair ServiceAccount tokens are signed with (the API server verifies, the controller
    manager's token controller signs)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = folder / "sa.key", folder / "sa.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


class RealCluster(RealApiServer):
    """The control plane; `request` and `session` act as a system:masters admin."""

    def start(self, timeout: float = 120.0) -> RealCluster:
        certs = self.certs = _certificates(self.folder, IDENTITIES)
        sa_key, sa_pub = _service_account_key(self.folder)
        etcd_url = self._start_etcd()
        policy = self.folder / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        self._spawn("kube-apiserver", [
            str(APISERVER), "--etcd-servers", etcd_url, "--bind-address", "127.0.0.1",
            "--advertise-address", "127.0.0.1", "--secure-port", str(self.port),
            "--tls-cert-file", str(certs["server"]), "--tls-private-key-file", str(certs["server-key"]),
            "--client-ca-file", str(certs["ca"]), "--authorization-mode", "Node,RBAC",
            "--enable-admission-plugins", ADMISSION,
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(sa_pub), "--service-account-signing-key-file", str(sa_key),
            "--service-cluster-ip-range", "10.96.0.0/16", "--endpoint-reconciler-type", "none",
            "--allow-privileged", "--audit-log-path", str(self.folder / "audit.log"),
            "--audit-policy-file", str(policy), "--cert-dir", str(self.folder / "certs"), "--v", "1",
            *WATCH_EXPIRY])
        self.session.verify = str(certs["ca"])
        self.session.cert = (str(certs["admin"]), str(certs["admin-key"]))
        self._wait_ready("kube-apiserver", "/readyz", timeout)
        self._spawn("kube-controller-manager", [
            str(CONTROLLER_MANAGER),
            "--kubeconfig", str(self.kubeconfig(self.folder / "cm.kubeconfig", "controller-manager")),
            "--use-service-account-credentials", "--service-account-private-key-file", str(sa_key),
            "--root-ca-file", str(certs["ca"]), "--leader-elect=false", "--port", "0", "--secure-port", "0",
            # one node, no cloud: nothing to allocate or route
            "--controllers", "*,-nodeipam,-route,-service,-cloud-node-lifecycle",
            "--concurrent-gc-syncs", "5", "--v", "1"])
        self._spawn("kube-scheduler", [
            str(SCHEDULER), "--kubeconfig", str(self.kubeconfig(self.folder / "scheduler.kubeconfig", "scheduler")),
            "--leader-elect=false", "--port", "0", "--secure-port", "0", "--v", "1"])
        # The controller manager is up when its token controller has given `default` its token.
        self.wait("the controller manager's token controller", lambda: self.service_account_token(
            "default", "default", wait=False), timeout=timeout)
        return self

    def _wait_ready(self, what: str, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            with contextlib.suppress(requests.RequestException):
                if self.session.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{what} was not ready in {timeout:.0f} s:\n{self.logs()[-3000:]}")
            time.sleep(0.3)

    def check_alive(self) -> None:
        dead = [p for p in self.processes if p.poll() is not None]
        if dead:
            raise RuntimeError(f"the real cluster's {self._names[dead[0].pid]} exited "
                               f"({dead[0].returncode}):\n{self.logs()[-3000:]}")

    # -- objects
    def apply(self, obj: dict[str, Any]) -> requests.Response:
        """Create `obj` (as admin); an existing one is replaced."""
        path = object_path(obj)
        resp = self.request("POST", path.rsplit("/", 1)[0], obj)
        if resp.status_code == 409:
            current = self.request("GET", path).json()
            obj = {**obj, "metadata": {**obj["metadata"],
                                       "resourceVersion": current["metadata"]["resourceVersion"]}}
            resp = self.request("PUT", path, obj)
        return resp

    def get(self, path: str) -> dict[str, Any] | None:
        resp = self.request("GET", path)
        return None if resp.status_code == 404 else dict(resp.json())

    def namespace(self, name: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def service_account_token(self, namespace: str, name: str, wait: bool = True) -> str | None:
        """The token the token controller minted for a ServiceAccount (1.20's Secret-based tokens)."""
        def token() -> str | None:
            sa = self.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")
            for ref in (sa or {}).get("secrets") or []:
                secret = self.get(f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}")
                value = ((secret or {}).get("data") or {}).get("token")
                if value:
                    return base64.b64decode(value).decode()
            return None
        return self.wait(f"a token for {namespace}/{name}", token, timeout=60) if wait else token()

    def audit(self) -> list[dict[str, Any]]:
        """Every request the API server answered so far (its audit log's ResponseComplete events)."""
        path = self.folder / "audit.log"
        events = [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []
        return [e for e in events if e.get("stage") == "ResponseComplete"]


def object_path(obj: dict[str, Any]) -> str:
    """The REST path of a manifest's object (the kinds the tier applies)."""
    api, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
    plural = PLURALS.get(kind) or kind.lower() + "s"
    base = "/api/v1" if api == "v1" else f"/apis/{api}"
    ns = meta.get("namespace")
    return f"{base}/namespaces/{ns}/{plural}/{meta['name']}" if ns else f"{base}/{plural}/{meta['name']}"


PLURALS = {"NetworkPolicy": "networkpolicies", "ResourceQuota": "resourcequotas", "LimitRange": "limitranges",
           "CustomResourceDefinition": "customresourcedefinitions", "Service": "services",
           "PriorityClass": "priorityclasses"}


@contextlib.contextmanager
def running(folder: Path) -> Iterator[RealCluster]:
    cluster = RealCluster(folder).start()
    try:
        yield cluster
    finally:
        cluster.stop()
