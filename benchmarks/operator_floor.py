"""The least any operator must do per SceneJob, as a stand-in operator: the floor under
benchmarks/operator_scale.py's latencies on the same emulated API server (`--floor` there runs it).

Not genfab and not an operator anyone should run: no validation, no planning, no storage, no
retries. It keeps only the API traffic that genfab's contract needs for a SceneJob to reach Running,
over aiohttp (kopf's own transport) with the same number of concurrent workers:

- a cluster-wide list+watch of SceneJobs and of Pods (genfab watches SceneJobs, Jobs and Pods);
- per new SceneJob: POST its stage ConfigMap, POST its first stage's Job;
- per Pod seen Running: PATCH the SceneJob's status to Running.

Whatever time this takes on a machine is what the emulator, the HTTP round trips and Python's JSON
cost there, before any of genfab's own work.

    python benchmarks/operator_floor.py --url http://127.0.0.1:PORT [--workers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp

SCENEJOBS = "/apis/genfab.dev/v1alpha1/scenejobs"
PODS = "/api/v1/pods"
MERGE_PATCH = "application/merge-patch+json"
RESOURCE_LABEL = "genfab.dev/resource"
"""The label genfab's Jobs and Pods carry (the benchmark pairs a SceneJob with its first Job by it)."""


async def watch(session: aiohttp.ClientSession, url: str, on_event: Callable[[str, dict[str, Any]], None]) -> None:
    async with session.get(url) as r:
        listing = await r.json()
    for item in listing["items"]:
        on_event("ADDED", item)
    version = listing["metadata"]["resourceVersion"]
    params = {"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "false"}
    async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=None)) as r:
        async for line in r.content:
            if line.strip():
                event = json.loads(line)
                on_event(event["type"], event["object"])


def owner(obj: dict[str, Any], kind: str, api: str) -> list[dict[str, Any]]:
    m = obj["metadata"]
    return [{"apiVersion": api, "kind": kind, "name": m["name"], "uid": m["uid"], "controller": True}]


def first_job(scenejob: dict[str, Any]) -> dict[str, Any]:
    m = scenejob["metadata"]
    labels = {RESOURCE_LABEL: m["name"], "genfab.dev/stage": "scaffold"}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"{m['name']}-scaffold", "labels": labels,
                         "ownerReferences": owner(scenejob, "SceneJob", "genfab.dev/v1alpha1")},
            "spec": {"completions": 1, "parallelism": 1, "completionMode": "Indexed", "backoffLimitPerIndex": 0,
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "stage", "image": "floor"}]}}}}


class Floor:
    """The queue, the two event callbacks and the workers that send the requests."""

    def __init__(self, base: str, token: str, workers: int) -> None:
        self.base, self.token, self.workers = base, token, workers
        self.todo: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.running: set[str] = set()

    def on_scenejob(self, type_: str | None, obj: dict[str, Any]) -> None:
        if type_ in ("ADDED", None):  # None: kopf's initial listing
            self.todo.put_nowait(("start", obj))

    def on_pod(self, type_: str | None, obj: dict[str, Any]) -> None:
        name = (obj["metadata"].get("labels") or {}).get(RESOURCE_LABEL)
        key = f"{obj['metadata']['namespace']}/{name}"
        if name and (obj.get("status") or {}).get("phase") == "Running" and key not in self.running:
            self.running.add(key)
            self.todo.put_nowait(("running", obj))

    async def work(self) -> None:
        base, todo = self.base, self.todo
        headers = {"Authorization": f"Bearer {self.token}"}
        connector = aiohttp.TCPConnector(limit=self.workers * 2)
        async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
            async def worker() -> None:
                while True:
                    what, obj = await todo.get()
                    ns = obj["metadata"]["namespace"]
                    if what == "start":
                        name = obj["metadata"]["name"]
                        cm = {"metadata": {"name": f"{name}-config",
                                           "ownerReferences": owner(obj, "SceneJob", "genfab.dev/v1alpha1")},
                              "data": {"stage.json": "{}"}}
                        async with session.post(f"{base}/api/v1/namespaces/{ns}/configmaps", json=cm) as r:
                            await r.read()
                        async with session.post(f"{base}/apis/batch/v1/namespaces/{ns}/jobs", json=first_job(obj)) as r:
                            await r.read()
                    else:
                        name = obj["metadata"]["labels"][RESOURCE_LABEL]
                        url = f"{base}/apis/genfab.dev/v1alpha1/namespaces/{ns}/scenejobs/{name}/status"
                        body = json.dumps({"status": {"phase": "Running"}})
                        async with session.patch(url, data=body, headers={"Content-Type": MERGE_PATCH}) as r:
                            await r.read()

            await asyncio.gather(*(worker() for _ in range(self.workers)))


async def serve(base: str, token: str, workers: int) -> None:
    """Plain aiohttp watches feed the workers."""
    floor = Floor(base, token, workers)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        await asyncio.gather(watch(session, base + SCENEJOBS, floor.on_scenejob),
                             watch(session, base + PODS, floor.on_pod), floor.work())


def serve_with_kopf(base: str, token: str, workers: int) -> None:
    """kopf's watches and event dispatch feed the same workers (genfab's wiring: `on.event` handlers
    for SceneJobs, DatasetJobs, TuningRuns, managed Jobs and Pods, kopf's diff base and progress
    storage off): what kopf itself adds to the floor."""
    import kopf

    from genfab.operator.handlers import NoDiffBase, NoProgress

    registry = kopf.OperatorRegistry()
    floor = Floor(base, token, workers)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.ConnectionInfo(server=base, token=token)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = 30
        settings.persistence.diffbase_storage = NoDiffBase()
        settings.persistence.progress_storage = NoProgress()
        asyncio.get_running_loop().create_task(floor.work())

    @kopf.on.event("genfab.dev", "v1alpha1", "scenejobs", registry=registry)
    async def on_scenejob(event: kopf.RawEvent, **_: Any) -> None:
        floor.on_scenejob(event.get("type"), dict(event["object"]))

    for plural in ("datasetjobs", "tuningruns"):
        kopf.on.event("genfab.dev", "v1alpha1", plural, registry=registry)(nothing)
    kopf.on.event("batch", "v1", "jobs", labels={RESOURCE_LABEL: kopf.PRESENT}, registry=registry)(nothing)

    @kopf.on.event("", "v1", "pods", labels={RESOURCE_LABEL: kopf.PRESENT}, registry=registry)
    async def on_pod(event: kopf.RawEvent, **_: Any) -> None:
        floor.on_pod(event.get("type"), dict(event["object"]))

    kopf.run(registry=registry, clusterwide=True, standalone=True)


async def nothing(**_: Any) -> None:
    """A watch kept open (its events decoded and dispatched by kopf) that needs no action."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", default="emulator")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--kopf", action="store_true", help="watch through kopf (genfab's wiring) instead of aiohttp")
    args = ap.parse_args()
    if args.kopf:
        serve_with_kopf(args.url.rstrip("/"), args.token, args.workers)
    else:
        asyncio.run(serve(args.url.rstrip("/"), args.token, args.workers))


if __name__ == "__main__":
    main()
