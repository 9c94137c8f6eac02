"""The operator's API requests on a real control plane, counted by the API server's audit log, beside the
emulator's count of the same work.

N SceneJobs in K namespaces are applied at once to kube-apiserver 1.20 with its controller manager and
scheduler (tests/realcluster: the chart's RBAC and CRDs from `helm template`, the operator as the chart's
ServiceAccount with the settings the chart's Deployment gives it). Kubernetes 1.20 keeps no Indexed Jobs,
so each resource's path ends at the operator's refusal (Stalled, ClusterUnsupported: one status write and
one Warning Event). The same N on the emulated API server told to drop the same Job fields
(`KUBERNETES_1_20_DROPS`) takes the same path; its own request counter counts it. Reported side by side:
requests per resource by `METHOD resource` (the real server's by subresource too), the requests the
operator made at its start, and the refused ones (4xx other than 404 and 409).

    python benchmarks/operator_real_cluster.py --n 100 --namespaces 10 [--write]

Needs the real control plane built (scripts/real_cluster.sh) and helm (.tools/bin, as CI installs it).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.emulator.cluster import KUBERNETES_1_20_DROPS
from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import Emulator, OperatorProcess, wait_until
from tests.realcluster.cluster import RealCluster, running
from tests.realcluster.conftest import (
    LAB_VALUES,
    RELEASE_NAMESPACE,
    chart_env,
    chart_objects,
    install,
    start_operator,
    tenant,
)

RESULTS = Path(__file__).parent / "results" / "operator.md"
TITLE = "## Requests on a real control plane (kube-apiserver 1.20, audit log) beside the emulator's"
METHODS = {"create": "POST", "patch": "PATCH", "update": "PUT", "delete": "DELETE", "deletecollection": "DELETE",
           "get": "GET", "list": "GET", "watch": "GET"}
OPERATOR = f"system:serviceaccount:{RELEASE_NAMESPACE}:genfab"


def scenejobs(n: int, namespaces: int, tmp: Path) -> list[dict[str, Any]]:
    docs = []
    for i in range(n):
        doc = make_scenejob(tmp, samples=1)
        doc["metadata"] = {"name": f"scene-{i}", "namespace": f"lab-{i % namespaces}"}
        docs.append(doc)
    return docs


def stalled(status: dict[str, Any] | None) -> bool:
    return any(c.get("type") == "Stalled" and c.get("status") == "True" for c in (status or {}).get("conditions") or [])


def settle(what: str, all_stalled: Callable[[], bool]) -> float:
    started = time.monotonic()
    wait_until(what, all_stalled, timeout=600, interval=0.5)
    time.sleep(2.0)  # what the operator sends once they are settled (a resync's reconciles) is counted too
    return time.monotonic() - started


def real(n: int, namespaces: int, tmp: Path) -> dict[str, Any]:
    with running(tmp / "cluster") as cluster:
        install(cluster, chart_objects(LAB_VALUES, tmp))
        (tmp / "operator").mkdir()
        op = start_operator(cluster, tmp / "operator", "genfab", **chart_env(LAB_VALUES, tmp))
        try:
            cluster.wait("operator liveness", op.healthy, timeout=60)
            time.sleep(2.0)
            for i in range(namespaces):
                tenant(cluster, f"lab-{i}")
            start_up = operator_requests(cluster)
            docs = scenejobs(n, namespaces, tmp)
            for doc in docs:
                resp = cluster.apply(doc)
                assert resp.status_code == 201, resp.text[:300]
            seconds = settle("every SceneJob stalled (real)", lambda: len(items := (cluster.get(
                "/apis/genfab.dev/v1alpha1/scenejobs") or {}).get("items") or []) == n and all(
                stalled(i.get("status")) for i in items))
            after = operator_requests(cluster)
        finally:
            op.stop()
        refused = [e for e in after["events"] if _refused(e)]
        return {"start": start_up["counts"], "during": after["counts"] - start_up["counts"],
                "detail": after["detail"] - start_up["detail"], "refused": len(refused), "seconds": seconds,
                "not_found": sum(1 for e in after["events"] if e["responseStatus"].get("code") in (404, 409))}


def operator_requests(cluster: RealCluster) -> dict[str, Any]:
    events = [e for e in cluster.audit() if e["user"]["username"] == OPERATOR]
    counts: Counter[str] = Counter()
    detail: Counter[str] = Counter()
    for e in events:
        ref = e.get("objectRef") or {}
        what = ref.get("resource") or e["requestURI"].split("?")[0]  # discovery and /version name no resource
        counts[f"{METHODS.get(e['verb'], e['verb'].upper())} {what}"] += 1
        sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
        detail[f"{e['verb']} {what}{sub}"] += 1
    return {"events": events, "counts": counts, "detail": detail}


def _refused(event: dict[str, Any]) -> bool:
    code = int(event["responseStatus"].get("code") or 200)
    return code >= 400 and code not in (404, 409)


def emulated(n: int, namespaces: int, tmp: Path) -> dict[str, Any]:
    emu = Emulator().start()
    emu.cluster.drops_job_fields = KUBERNETES_1_20_DROPS
    (tmp / "emulated-operator").mkdir()
    op = OperatorProcess(emu, tmp / "emulated-operator", **chart_env(LAB_VALUES, tmp)).start()
    try:
        emu.wait("operator liveness", op.healthy, timeout=60)
        time.sleep(2.0)
        docs = scenejobs(n, namespaces, tmp)
        for i in range(namespaces):
            emu.prepare_namespace(f"lab-{i}")
        before = Counter(emu.cluster.request_counts)
        for doc in docs:
            emu.apply(doc, prepare=False)
        seconds = settle("every SceneJob stalled (emulated)", lambda: all(
            stalled(emu.status("SceneJob", d["metadata"]["name"], d["metadata"]["namespace"])) for d in docs))
        return {"during": Counter(emu.cluster.request_counts) - before, "seconds": seconds}
    finally:
        op.stop()
        emu.stop()


def report(n: int, namespaces: int, r: dict[str, Any], e: dict[str, Any]) -> str:
    kinds = sorted(set(r["during"]) | set(e["during"]), key=lambda k: (-r["during"].get(k, 0), k))
    rows = [f"| `{k}` | {r['during'].get(k, 0) / n:.2f} | {e['during'].get(k, 0) / n:.2f} |" for k in kinds]
    total_r, total_e = sum(r["during"].values()) / n, sum(e["during"].values()) / n
    detail = ", ".join(f"`{k}` {v / n:.2f}" for k, v in sorted(r["detail"].items(), key=lambda kv: -kv[1]))
    start = ", ".join(f"`{k}` {v}" for k, v in sorted(r["start"].items(), key=lambda kv: (-kv[1], kv[0])))
    return "\n".join([
        TITLE, "",
        f"`python benchmarks/operator_real_cluster.py --n {n} --namespaces {namespaces}`: {n} SceneJobs in "
        f"{namespaces} namespaces applied at once; machine: {platform.machine()}, Python "
        f"{platform.python_version()}, kopf {version('kopf')}; kube-apiserver, kube-controller-manager and "
        "kube-scheduler v1.20.2 (scripts/real_cluster.sh), the chart's RBAC, the operator as its ServiceAccount "
        "with the Deployment's settings. 1.20 keeps no Indexed Jobs: every resource ends Stalled "
        "(ClusterUnsupported); the emulator drops the same Job fields, so both take that path.", "",
        "| requests per resource (`METHOD resource`) | real API server (audit log) | emulator (its counter) |",
        "| --- | ---: | ---: |", *rows, f"| **all** | **{total_r:.2f}** | **{total_e:.2f}** |", "",
        f"- Real server, by verb and subresource (per resource): {detail}.",
        f"- Refused requests of the operator on the real server (4xx other than 404/409), start-up included: "
        f"**{r['refused']}**; 404/409 answers: {r['not_found']}.",
        f"- The operator's start-up requests on the real server (once per start, not per resource; completed ones: "
        f"a watch is logged when it ends): {start}.",
        f"- Until all were settled (+2 s): real {r['seconds']:.1f} s, emulated {e['seconds']:.1f} s.", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--write", action="store_true", help=f"put the section into {RESULTS}")
    args = parser.parse_args()
    if args.n % args.namespaces:
        parser.error("--n must be a multiple of --namespaces")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        r = real(args.n, args.namespaces, tmp)
        e = emulated(args.n, args.namespaces, tmp)
    text = report(args.n, args.namespaces, r, e)
    print(text)
    if args.write:
        current = RESULTS.read_text()
        if TITLE in current:
            head, _, rest = current.partition(TITLE)
            tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
            current = head + text + tail
        else:
            current = current.rstrip("\n") + "\n\n" + text
        RESULTS.write_text(current)


if __name__ == "__main__":
    main()
