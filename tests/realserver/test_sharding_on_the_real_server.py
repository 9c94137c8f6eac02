"""The operator's shards (genfab.operator.sharding) against Kubernetes' own shard selectors: the API
server, with the ShardedListAndWatch gate on, lists and watches for each `Shard.shard_selector()`
exactly the resources that `Shard.owns`, and together the shards list every resource once; and two
operator processes (`GENFAB_SHARD` 0/2 and 1/2, kopf's own watches) each run exactly their shard's. (Lists of
custom resources carry no `metadata.shardInfo`: an unstructured list does not implement the setter.)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from genfab.api.resources import GROUP, PLURALS, VERSION
from genfab.operator.sharding import Shard
from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import Emulator, OperatorProcess
from tests.emulator.kubelet import Behaviour
from tests.helpers import load_example
from tests.realserver import server as real
from tests.realserver.requests import NS, create, fresh, path_of
from tests.realserver.split import SplitCluster, SplitProxy

LIST = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURALS['DatasetJob']}"


@pytest.fixture(scope="module")
def uids(apiserver: real.RealApiServer, crds: dict[str, Any]) -> set[str]:
    for _ in range(24):
        assert create(apiserver, fresh(load_example("datasetjob-relighting.yaml"))).status_code == 201
    return {o["metadata"]["uid"] for o in apiserver.request("GET", LIST).json()["items"]}


@pytest.mark.parametrize("count", [2, 3, 4])
def test_each_shard_lists_exactly_the_resources_it_owns(apiserver: real.RealApiServer, uids: set[str],
                                                        count: int) -> None:
    seen: list[str] = []
    for i in range(count):
        shard = Shard(i, count)
        resp = apiserver.request("GET", f"{LIST}?{urlencode({'shardSelector': shard.shard_selector()})}")
        assert resp.status_code == 200, resp.text
        listed = resp.json()
        got = {o["metadata"]["uid"] for o in listed["items"]}
        assert got == {u for u in uids if shard.owns(u)}, shard
        seen += got
    assert sorted(seen) == sorted(uids)


def test_a_shards_watch_sends_only_its_resources(apiserver: real.RealApiServer, uids: set[str]) -> None:
    shard = Shard(1, 2)
    resp = apiserver.request("GET", f"{LIST}?" + urlencode({"watch": "true", "timeoutSeconds": "2",
                                                            "shardSelector": shard.shard_selector()}))
    events = [json.loads(line) for line in resp.text.splitlines() if line.strip()]
    assert {e["object"]["metadata"]["uid"] for e in events if e["type"] == "ADDED"} == {
        u for u in uids if shard.owns(u)}


# -- two operator processes, each watching its shard through kopf on the real server ----------------

SHARDED_NS = "genfab-shards"


@pytest.fixture(scope="module")
def sharded(apiserver: real.RealApiServer, crds: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[SplitCluster, list[OperatorProcess]]]:
    emulator = Emulator().start()
    proxy = SplitProxy(apiserver, emulator).start()
    ops = []
    try:
        # One resource exists before the shards start: their startup check can tell whether the server
        # filters by shard.
        emulator.prepare_namespace(SHARDED_NS)
        first = fresh(load_example("datasetjob-relighting.yaml"))
        first["metadata"]["namespace"] = SHARDED_NS
        assert apiserver.request("POST", path_of("DatasetJob", ns=SHARDED_NS), first).status_code == 201
        for i in range(2):
            workdir = tmp_path_factory.mktemp(f"shard-{i}")
            ops.append(OperatorProcess(emulator, workdir, GENFAB_SHARD=f"{i}/2",
                                       KUBECONFIG=str(proxy.kubeconfig(workdir / "split.kubeconfig")))
                       .start("--namespace", SHARDED_NS))
        for op in ops:
            emulator.wait("operator liveness", op.healthy, timeout=60, interval=0.2)
        yield SplitCluster(apiserver, emulator, proxy), ops
    finally:
        for op in ops:
            op.stop()
        proxy.stop()
        emulator.stop()


def test_two_shards_on_the_real_server_each_run_their_own_resources(
        sharded: tuple[SplitCluster, list[OperatorProcess]], tmp_path: Path) -> None:
    cluster, ops = sharded
    cluster.emulator.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
    docs = []
    for _ in range(6):
        doc = make_scenejob(tmp_path, samples=1)
        doc["metadata"]["namespace"] = SHARDED_NS
        doc["spec"]["output"] += f"/{doc['metadata']['name']}"
        assert cluster.apply(doc).status_code == 201
        docs.append(doc)
    uids = {}
    for doc in docs:
        cluster.wait_status(doc, "Succeeded", lambda st: st.get("phase") == "Succeeded")
        uids[doc["metadata"]["name"]] = (cluster.get(doc) or {})["metadata"]["uid"]
    for i, op in enumerate(ops):
        logs = op.logs()
        assert f"shard {i}/2: buckets" in logs and "the API server filters resources by shard" in logs, logs[-3000:]
        started = set(re.findall(rf"SceneJob {SHARDED_NS}/(\S+): stage \S+ started", logs))
        assert started == {n for n, uid in uids.items() if Shard(i, 2).owns(uid)}
