"""The real kopf operator with genfab's kinds on Kubernetes' own CRD server (watched, patched and
their status written there), and Jobs, Pods, ConfigMaps, Events and Namespaces on the emulator, which
also plays the Job controller and kubelet (tests/realserver/split.py)."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import Emulator, OperatorProcess
from tests.emulator.kubelet import Behaviour
from tests.emulator.resources import quality_job, quality_script
from tests.realserver import server as real
from tests.realserver.requests import path_of
from tests.realserver.split import SplitCluster, SplitProxy


@pytest.fixture(scope="module")
def split(apiserver: real.RealApiServer, crds: dict[str, Any],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SplitCluster, OperatorProcess]]:
    emulator = Emulator().start()
    proxy = SplitProxy(apiserver, emulator).start()
    workdir = tmp_path_factory.mktemp("operator-real")
    op = OperatorProcess(emulator, workdir, KUBECONFIG=str(proxy.kubeconfig(workdir / "split.kubeconfig"))).start()
    try:
        emulator.wait("operator liveness", op.healthy, timeout=60, interval=0.2)
        yield SplitCluster(apiserver, emulator, proxy), op
    finally:
        op.stop()
        proxy.stop()
        emulator.stop()


@pytest.fixture()
def cluster(split: tuple[SplitCluster, OperatorProcess]) -> Iterator[SplitCluster]:
    c, op = split
    c.emulator.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
    c.proxy.writes, c.proxy.pruned = 0, []  # each scenario's own writes
    yield c
    if op.process is not None and op.process.poll() is not None:
        raise AssertionError(f"the operator died:\n{op.log.read_text()[-4000:]}")


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def stage_jobs(cluster: SplitCluster, doc: dict[str, Any]) -> dict[str, str]:
    return {j["metadata"]["labels"]["genfab.dev/stage"]: j["metadata"]["uid"] for j in cluster.jobs(doc)}


def test_a_scenejob_runs_to_succeeded_with_its_columns(cluster: SplitCluster, tmp_path: Path) -> None:
    doc = make_scenejob(tmp_path, samples=3, shard_size=2)
    assert cluster.apply(doc).status_code == 201
    st = cluster.wait_status(doc, "Succeeded", lambda st: st.get("phase") == "Succeeded")
    assert st["observedGeneration"] == 1 and st["progress"] == "3/3"
    assert [s["phase"] for s in st["stages"]] == ["Succeeded"] * 3
    assert condition(st, "Succeeded")["status"] == "True"
    owner = cluster.get(doc)
    assert owner is not None
    for job in cluster.jobs(doc):  # children on the emulator, owned by the resource on the real server
        (ref,) = job["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"]) == ("SceneJob", doc["metadata"]["name"], owner["metadata"]["uid"])
    row = cluster.row(doc)
    assert (row["Phase"], row["Progress"], row["Pipeline"]) == ("Succeeded", "3/3", "worldexplorer")
    assert cluster.proxy.routed["real"] > 0 and cluster.proxy.routed["emulator"] > 0
    # Nothing the operator wrote into the resource (status, conditions, per-stage counts) was pruned
    # by the real server's schema.
    assert cluster.proxy.writes > 0
    assert cluster.proxy.pruned == [], f"the server's answers lack what the operator wrote: {cluster.proxy.pruned}"


def test_a_spec_change_re_plans_only_what_it_affects(cluster: SplitCluster, tmp_path: Path) -> None:
    doc = make_scenejob(tmp_path, samples=2)
    cluster.apply(doc)
    cluster.wait_status(doc, "Succeeded", lambda st: st.get("phase") == "Succeeded")
    before = stage_jobs(cluster, doc)
    changed = copy.deepcopy(doc)
    changed["spec"]["gaussians"] = {"steps": 7000}
    resp = cluster.apply(changed)
    assert resp.status_code == 200 and resp.json()["metadata"]["generation"] == 2
    cluster.wait_status(doc, "generation 2 Succeeded",
                        lambda st: st.get("observedGeneration") == 2 and st["phase"] == "Succeeded")
    after = stage_jobs(cluster, doc)
    assert after["scaffold"] == before["scaffold"] and after["expansion"] == before["expansion"]
    assert after["gaussians"] != before["gaussians"]


def test_an_invalid_spec_is_refused_by_the_real_server(cluster: SplitCluster, tmp_path: Path) -> None:
    doc = make_scenejob(tmp_path, samples=2, shardSize=0)
    resp = cluster.apply(doc)
    assert resp.status_code == 422
    assert [f for f, _ in real.causes(resp)] == ["spec.shardSize"]
    assert cluster.get(doc) is None and not cluster.jobs(doc)


def test_a_spec_the_server_accepts_and_genfab_refuses_gets_invalid_spec(cluster: SplitCluster,
                                                                       tmp_path: Path) -> None:
    """A drive-letter path is a relative path to the CRD's pattern; genfab's own validation refuses it."""
    doc = make_scenejob(tmp_path, samples=2)
    doc["spec"]["input"]["samples"][0]["photorealistic"]["path"] = "C:/lab/img_00.png"
    assert cluster.apply(doc).status_code == 201
    st = cluster.wait_status(doc, "InvalidSpec", lambda st: condition(st, "InvalidSpec").get("status") == "True")
    message = condition(st, "InvalidSpec")["message"]
    assert "spec.input.samples[0].photorealistic.path" in message and "not absolute" in message
    assert st["phase"] == "Failed" and condition(st, "Accepted")["status"] == "False"
    assert cluster.row(doc)["Phase"] == "Failed"
    time.sleep(1)
    assert not cluster.jobs(doc)


def test_deleting_on_the_real_server_cleans_up(cluster: SplitCluster, tmp_path: Path) -> None:
    cluster.emulator.kubelet.script = lambda stage, index, attempt: Behaviour(hold=True)
    doc = make_scenejob(tmp_path, samples=2)
    ns = doc["metadata"]["namespace"]
    cluster.apply(doc)
    cluster.real.wait("pods", lambda: cluster.emulator.objects("pods", ns), timeout=60)
    uid = (cluster.get(doc) or {})["metadata"]["uid"]
    resp = cluster.real.request("DELETE", path_of("SceneJob", doc["metadata"]["name"], ns=ns))
    assert resp.status_code == 200
    cluster.real.wait("gone from the real server", lambda: cluster.get(doc) is None)
    cluster.proxy.collect_garbage(uid)
    cluster.real.wait("children gone", lambda: not any(cluster.emulator.objects(p, ns)
                                                       for p in ("jobs", "pods", "configmaps")))
    # A reconcile already in flight when the deletion reached the operator's watch (a loaded CI machine
    # lags) may create the stage's Job once more, owned by the deleted UID; Kubernetes' garbage
    # collector keeps removing such orphans, so the split cluster collects once more, as it would.
    time.sleep(2)
    cluster.proxy.collect_garbage(uid)
    time.sleep(2)  # a resync later, the operator has created nothing again for the deleted resource
    assert not cluster.jobs(doc)
    cluster.emulator.kubelet.release("scaffold")


def test_quality_figures_and_drops_are_kept_by_the_real_servers_status_schema(cluster: SplitCluster,
                                                                              tmp_path: Path) -> None:
    """The status the operator writes for a relighting job with a `quality` bound (figure histograms and
    spans, QualityOutOfRange drops) is what the real server stores: nothing of it pruned by the CRD's
    status schema, the job PartiallySucceeded without continueOnError."""
    cluster.emulator.kubelet.script = quality_script
    doc = quality_job(tmp_path)
    doc["metadata"]["namespace"] = "lab-quality-real"
    assert cluster.apply(doc).status_code == 201
    st = cluster.wait_status(doc, "a finished phase", lambda st: st.get("phase") in ("PartiallySucceeded", "Failed"),
                             timeout=90)
    assert st["phase"] == "PartiallySucceeded", st
    stages = {s["name"]: s for s in st["stages"]}
    assert stages["organize"]["tally"]["dropped"] == {"QualityOutOfRange": {"count": 1, "examples": ["p0"]}}
    assert set(stages["segment"]["tally"]["figures"]) == {"maskArea", "boundaryOnEdge", "facesOutside"}
    assert stages["segment"]["tally"]["figureSpans"]["maskArea"] == [0.4027, 0.4027]
    assert cluster.proxy.pruned == [], f"the server's answers lack what the operator wrote: {cluster.proxy.pruned}"
