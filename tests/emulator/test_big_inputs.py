"""An input folder of 30,000 and 210,000 objects on an S3 server (slow tier) plans and starts
on the operator: more than it lists in a reconcile (20,000), so a one-Pod inventory Job of the data plane
lists it once and writes the stage's sample manifest, the operator sizes the stage from the manifest's
header, and the stage's Job starts with its shards reading their slices from it.

Before this (main at fc06e2f), an input of more than 200,000 objects stalled for good: the operator listed
it inside a reconcile, under the reconcile's budget, from the start every time.

The S3 server is moto, on its own emulator and operator (this module's, configured for it). moto lists a
page of 1,000 keys by sorting the whole bucket (0.65 s a page at 30,000 keys: 300 pages of 300,000 would
take about half an hour), so the test gives moto's ListObjectsV2 a sorted index of the input folder, which
it never writes again; pages are cut and continued by moto's own code (and checked against moto's
unindexed listing).
"""

from __future__ import annotations

import base64
import bisect
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.s3.models import S3Backend

from tests.emulator.cluster import res_for
from tests.emulator.harness import Emulator, OperatorProcess, moto_backend, moto_bucket
from tests.emulator.kubelet import Behaviour
from tests.emulator.reading import jobs, stage, wait_status

pytestmark = [pytest.mark.emulator, pytest.mark.slow]  # (the default run lists 25,000 files: test_big_jobs.py)
BUCKET, SECRET = "lab-big", "lab-s3"


class SortedListing:
    """moto's ListObjectsV2 over a folder that no longer changes, from a sorted index built once (`freeze`):
    a page is found by bisection, then cut and given its continuation token by moto's own code."""

    def __init__(self) -> None:
        self.original = S3Backend.list_objects_v2
        self.frozen: dict[tuple[str, str], tuple[list[str], list[Any]]] = {}

    def freeze(self, backend: S3Backend, bucket: str, prefix: str) -> None:
        keys = backend.get_bucket(bucket).keys
        names = sorted(k for k in keys if k.startswith(prefix))
        self.frozen[(bucket, prefix)] = (names, [keys[n] for n in names])

    def list_objects_v2(self, backend: S3Backend, bucket: Any, prefix: str | None, delimiter: str | None,
                        continuation_token: str | None, start_after: str | None, max_keys: int) -> Any:
        found = self.frozen.get((bucket.name, prefix or ""))
        if found is None or delimiter:
            return self.original(backend, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
        names, keys = found
        after = backend._pagination_tokens.get(continuation_token) if continuation_token else start_after
        start = bisect.bisect_right(names, after) if after else 0
        return backend._truncate_result(keys[start:start + max_keys + 1], max_keys)

    def install(self) -> None:
        def list_objects_v2(backend: S3Backend, bucket: Any, prefix: str | None, delimiter: str | None,
                            continuation_token: str | None, start_after: str | None, max_keys: int) -> Any:
            return self.list_objects_v2(backend, bucket, prefix, delimiter, continuation_token, start_after,
                                        max_keys)
        S3Backend.list_objects_v2 = list_objects_v2  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def s3_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, str, SortedListing]]:
    listing = SortedListing()
    listing.install()
    server, endpoint = moto_bucket(BUCKET)
    emu = Emulator().start()
    op = OperatorProcess(emu, tmp_path_factory.mktemp("s3-operator"),
                         GENFAB_STORAGE_PREFIXES=json.dumps({"*": [f"s3://{BUCKET}/{{namespace}}/"]}),
                         GENFAB_SECRET_NAMES=json.dumps([SECRET]),
                         GENFAB_STORAGE_ENDPOINTS=json.dumps([endpoint])).start()
    try:
        emu.wait("operator liveness", op.healthy, timeout=60, interval=0.2)
        yield emu, endpoint, listing
        assert "Traceback" not in op.logs(), op.logs()[-6000:]
    finally:
        op.stop()
        emu.stop()
        server.stop()
        S3Backend.list_objects_v2 = listing.original  # type: ignore[method-assign]


def test_the_sorted_index_answers_as_moto_does(s3_cluster: tuple[Emulator, str, SortedListing]) -> None:
    _, endpoint, listing = s3_cluster
    for i in (3, 1, 2):
        moto_backend().put_object(BUCKET, f"check/k{i}.png", b"x")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test-secret")
    plain = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="check/", MaxKeys=2)["Contents"]]
    listing.freeze(moto_backend(), BUCKET, "check/")
    pages = [[o["Key"] for o in p["Contents"]] for p in s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix="check/", PaginationConfig={"PageSize": 2})]
    assert plain == pages[0] == ["check/k1.png", "check/k2.png"] and pages[1] == ["check/k3.png"]


def big_input(s3_cluster: tuple[Emulator, str, SortedListing], ns: str, objects: int) -> dict[str, Any]:
    """A DatasetJob of `objects` images in namespace `ns` on the module's S3 server (its Secret there)."""
    emu, endpoint, listing = s3_cluster
    folder = f"{ns}/in/"
    store = moto_backend()
    for i in range(objects):
        store.put_object(BUCKET, f"{folder}p{i:07d}.png", b"png")
    listing.freeze(store, BUCKET, folder)
    emu.prepare_namespace(ns)
    emu.call(lambda: emu.cluster.create(res_for("secrets"), ns, {"metadata": {"name": SECRET}, "data": {
        k: base64.b64encode(v.encode()).decode() for k, v in (("AWS_ACCESS_KEY_ID", "test"),
                                                               ("AWS_SECRET_ACCESS_KEY", "test-secret"))}}))
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "big", "namespace": ns},
            "spec": {"type": "relighting", "output": f"s3://{BUCKET}/{ns}/out", "onlyStages": ["segment"],
                     "parallelism": 4, "storage": {"endpoint": endpoint, "secretRef": {"name": SECRET}},
                     "relighting": {"input": {"uri": f"s3://{BUCKET}/{folder}"},
                                    "segmentation": {"backends": ["classical"]}}}}


@pytest.mark.parametrize("objects", [30_000, 210_000])
def test_an_input_of_many_objects_plans_and_starts(s3_cluster: tuple[Emulator, str, SortedListing],
                                                    objects: int) -> None:
    emu = s3_cluster[0]
    doc = big_input(s3_cluster, f"big-s3-{objects}", objects)
    ns = doc["metadata"]["namespace"]
    emu.kubelet.script = lambda stage_, index, attempt: Behaviour(outcome="unschedulable")  # started, no more
    emu.apply(doc)
    started = emu.wait("the stage's Job", lambda: [j for j in jobs(emu, doc)
                                                   if "genfab.dev/task" not in j["metadata"]["labels"]],
                       timeout=max(60, objects / 1000))
    st = wait_status(emu, doc, "the stage running with its Job's samples",
                     lambda st: stage(st, "segment").get("samples", {}).get("total") == objects, timeout=60)
    job = started[0]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GENFAB_SAMPLE_MANIFEST"] == "1" and job["metadata"]["annotations"]["genfab.dev/samples"] == str(objects)
    assert stage(st, "segment")["phase"] == "Running" and st["phase"] == "Running"
    shards = stage(st, "segment")["shards"]["total"]
    assert shards > 4 and job["metadata"]["annotations"]["genfab.dev/shards"] == str(shards)
    # parallelism 4 below the shards: four warm workers take them one after another
    assert job["spec"]["completions"] == 4 and env["GENFAB_WORKERS"] == "4"
    emu.call(lambda: emu.cluster.delete((res_for("datasetjobs"), ns, "big")))


def test_an_inventory_job_whose_pod_is_refused_stalls_the_resource(s3_cluster: tuple[Emulator, str, SortedListing]
                                                                   ) -> None:
    """Too many objects to list in a reconcile: a one-Pod inventory Job lists them. A quota refusing that
    Pod (the Job controller's FailedCreate Event, no status) left the stage "listing" forever, Stalled False."""
    emu = s3_cluster[0]
    doc = big_input(s3_cluster, "big-s3-refused", 21_000)  # past the 20,000 a reconcile lists itself
    ns = doc["metadata"]["namespace"]
    emu.kubelet.script = lambda stage_, index, attempt: Behaviour(outcome="unschedulable")
    emu.kubelet.refuse_pods[ns] = "exceeded quota: no-pods, requested: pods=1, used: pods=0, limited: pods=0"
    try:
        emu.apply(doc)
        st = wait_status(emu, doc, "Stalled PodsRefused", lambda st: any(
            c["type"] == "Stalled" and c["status"] == "True" and c["reason"] == "PodsRefused"
            for c in st.get("conditions", [])), timeout=60)
        message = next(c["message"] for c in st["conditions"] if c["type"] == "Stalled")
        assert message.startswith("inventory job big-segment-") and "exceeded quota: no-pods" in message
    finally:
        emu.kubelet.refuse_pods.pop(ns, None)
    # the quota raised: the inventory runs, the stage's own Job follows
    emu.wait("the stage's Job", lambda: [j for j in jobs(emu, doc) if "genfab.dev/task" not in j["metadata"]["labels"]],
             timeout=60)
    emu.call(lambda: emu.cluster.delete((res_for("datasetjobs"), ns, "big")))
