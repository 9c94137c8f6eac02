"""kopf wiring only: watch events go to the controller, which decides and acts (see controller.py).

Low-level `on.event` handlers keep no per-object state in annotations: the status and the
cluster are the only state, so a restarted operator simply continues from what it sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kopf

from genfab.api.resources import GROUP, KINDS, PLURALS, VERSION
from genfab.operator import bounded_json
from genfab.operator.connection import Connection, load_connection
from genfab.operator.controller import Controller
from genfab.operator.kube import Kube
from genfab.operator.metrics import OperatorMetrics
from genfab.operator.objects import LABEL_MANAGED
from genfab.operator.settings import OperatorSettings
from genfab.operator.sharding import Shard

MANAGED = {LABEL_MANAGED: "genfab"}
WORKER_IDLE_SECONDS = 1.0
"""How long kopf keeps an object's event worker (an asyncio task with its queue and state) after its
last event; kopf's default is 5 s. genfab's handlers only update the cache and enqueue, so a worker
started again later costs little, while in a burst of new resources every SceneJob, Job and Pod
seen in the last 5 s held one: at N = 1,000 with two shards, 1 s took 15-25 MB off the peak RSS
(benchmarks/results/operator.md, seventh slice)."""
bounded_json.install()  # every body kopf decodes is bounded in depth before it reaches a handler


class NoDiffBase(kopf.DiffBaseStorage):
    """genfab registers only low-level `on.event` handlers, so kopf's change detection (the "diff base"
    it keeps per object to find what changed between events) is never read. kopf still builds one for
    every watch event, a deep copy of the body: 20 % of the operator's CPU in a 1,000-resource burst
    (benchmarks/results/operator.md). This storage keeps nothing and builds an empty essence."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class NoProgress(kopf.ProgressStorage):
    """No handler progress is kept (event handlers have none), and none is stripped from bodies."""

    def fetch(self, *, key: Any, body: kopf.Body) -> None:
        return None

    def store(self, *, key: Any, record: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        return None

    def purge(self, *, key: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        return None

    def touch(self, *, body: kopf.Body, patch: kopf.Patch, value: str | None) -> None:
        return None

    def clear(self, *, essence: kopf.BodyEssence) -> kopf.BodyEssence:
        return essence


def configure(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    settings.watching.server_timeout = ours.watch_server_timeout
    settings.watching.client_timeout = ours.watch_client_timeout
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = ours.request_timeout
    settings.posting.level = 30  # kopf's own events: warnings and errors only
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.progress_storage = NoProgress()
    for selector in watch_selectors(ours.shard):
        getattr(settings.watching, selector.setting)[selector.resource] = selector.value
    # The watch handlers are async and only update the cache and enqueue (microseconds, no I/O):
    # no thread hand-off per event. Reconciles run on genfab's own worker threads.


@dataclass(frozen=True)
class WatchSelector:
    setting: str
    """`label_selectors` or `shard_selectors` of kopf's `settings.watching`."""
    resource: tuple[str, str]
    value: str


def watch_selectors(shard: Shard | None) -> list[WatchSelector]:
    """What the API server filters before sending (pure; kopf's handler filters act after decoding).
    Only genfab's own Jobs and Pods, not every Pod in the cluster; with a shard, only its resources'
    (by UID range) and their Jobs' and Pods' (by bucket label)."""
    children = ",".join([f"{LABEL_MANAGED}=genfab", *([shard.label_selector()] if shard else [])])
    found = [WatchSelector("label_selectors", ("batch", "jobs"), children),
             WatchSelector("label_selectors", ("", "pods"), children)]
    if shard is not None:
        found += [WatchSelector("shard_selectors", (GROUP, PLURALS[kind]), shard.shard_selector()) for kind in KINDS]
    return found


def _connection(memo: kopf.Memo) -> Connection:
    if memo.get("connection") is None:  # `genfab operator` loads it before kopf runs
        memo["connection"] = load_connection()
    connection: Connection = memo["connection"]
    return connection


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf's watches use genfab's connection (`connection.py`), not kopf's own login handlers: the
    same credentials for both, and no kubernetes client imported for them. Called again when the API
    server answers 401 (a token file is read again then)."""
    return kopf.ConnectionInfo(**_connection(memo).kopf_login())


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    ours: OperatorSettings = memo.get("settings") or OperatorSettings()
    configure(settings, ours)
    kube = Kube(_connection(memo), timeout=ours.request_timeout)
    metrics = memo.get("metrics") or OperatorMetrics()
    controller = Controller(kube, ours, metrics)
    controller.start()
    memo["controller"] = controller


@kopf.on.cleanup()
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        controller.stop()


@kopf.on.probe(id="reconcileQueue")
def queue_depth(memo: kopf.Memo, **_: Any) -> int:
    controller: Controller = memo["controller"]
    return len(controller.queue)


def _resource_handler(kind: str) -> None:
    @kopf.on.event(GROUP, VERSION, PLURALS[kind], id=f"watch-{kind}")
    async def on_resource(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
        memo["controller"].on_resource(kind, event.get("type"), dict(event["object"]))


for _kind in KINDS:
    _resource_handler(_kind)


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def on_job(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    memo["controller"].on_job(event.get("type"), dict(event["object"]))


@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def on_pod(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    memo["controller"].on_pod(event.get("type"), dict(event["object"]))
