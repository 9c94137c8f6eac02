"""Run `GenfabCluster` + the fake kubelet on a background event loop, and the real operator as a
subprocess talking to it over HTTP through a kubeconfig. Synchronous helpers for tests."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kmock
import yaml

from tests.emulator.cluster import GenfabCluster, res_for, res_of
from tests.emulator.kubelet import Kubelet

T = TypeVar("T")
PLURAL = {"SceneJob": "scenejobs", "DatasetJob": "datasetjobs", "TuningRun": "tuningruns"}
REPO = Path(__file__).resolve().parents[2]
STAGE_ACCOUNT = "genfab-stage"
"""The chart's default stages.serviceAccount.name, which the operator also defaults to."""
STAGE_NETWORK_POLICY = "genfab-stages"
"""The chart's stage NetworkPolicy for a release named genfab."""


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before in this process (the kernel may offer a port again
    once it is closed: two operator processes started together would then collide)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_until(what: str, predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """`predicate()`'s first truthy value, polled every `interval` s; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def moto_bucket(bucket: str) -> tuple[Any, str]:
    """A moto S3 server on localhost with `bucket` made (test/test-secret): (the server, its endpoint)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=(port := free_port()), verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test-secret").create_bucket(Bucket=bucket)
    return server, endpoint


def moto_backend() -> Any:
    """The S3 backend a `moto_bucket` server of this process serves (moto's default account): objects put
    here directly (about 0.06 ms each, against 10 ms through HTTP) are what the server lists and serves."""
    from moto.backends import get_backend

    return get_backend("s3")["123456789012"]["aws"]


def token_kubeconfig(path: Path, url: str, name: str) -> Path:
    """A kubeconfig for a plain-HTTP test API server at `url` (any token is accepted there)."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": url}}],
        "users": [{"name": name, "user": {"token": name}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }))
    return path


def stop_serving(loop: asyncio.AbstractEventLoop, stop: asyncio.Event | None, thread: threading.Thread,
                 serving: asyncio.Task[Any] | None) -> None:
    """End a server running on `loop` in `thread`: set `stop`, then, if it is still serving after a moment,
    cancel every task of the loop but `serving`. Open streams (watches) hold a server's cleanup for its whole
    shutdown timeout; cancelled, their handlers end and it closes at once (it took 10 s per server)."""
    if stop is not None:
        loop.call_soon_threadsafe(stop.set)
    thread.join(0.5)
    if thread.is_alive() and not loop.is_closed():
        def cancel_handlers() -> None:
            for task in asyncio.all_tasks(loop):
                if task is not serving:
                    task.cancel()
        with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
            loop.call_soon_threadsafe(cancel_handlers)
    thread.join(10)


class Emulator:
    def __init__(self, tick: float = 0.05) -> None:
        self.loop = asyncio.new_event_loop()
        self.cluster = GenfabCluster()
        self.kubelet = Kubelet(self.cluster, tick=tick)
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._serving: asyncio.Task[Any] | None = None
        self._thread = threading.Thread(target=self._main, name="emulator", daemon=True)

    def start(self) -> Emulator:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("emulator did not start")
        return self

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._serving = asyncio.current_task()
        async with self.cluster, kmock.Server(self.cluster) as server:
            self.url = str(server.url).rstrip("/")
            task = asyncio.create_task(self.kubelet.run())
            self._ready.set()
            await self._stop.wait()
            task.cancel()

    def stop(self) -> None:
        stop_serving(self.loop, self._stop, self._thread, self._serving)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the emulator's loop (the store is not thread-safe)."""
        async def wrapper() -> T:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(30)

    def kubeconfig(self, path: Path) -> Path:
        return token_kubeconfig(path, self.url, "emulator")

    # -- kubectl-like helpers
    def prepare_namespace(self, ns: str) -> None:
        """What the chart renders into a tenant namespace: the stage Pods' ServiceAccount and NetworkPolicy."""
        objects = {"serviceaccounts": {"metadata": {"name": STAGE_ACCOUNT}, "automountServiceAccountToken": False},
                   "networkpolicies": {"metadata": {"name": STAGE_NETWORK_POLICY}, "spec": {
                       "podSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "genfab"}}}}}

        def go() -> None:
            for plural, body in objects.items():
                if (res_for(plural), ns, body["metadata"]["name"]) not in self.cluster.store:
                    self.cluster.create(res_for(plural), ns, copy.deepcopy(body))
        self.call(go)

    def apply(self, doc: dict[str, Any], prepare: bool = True) -> dict[str, Any]:
        """Create the resource, or patch its spec (a GitOps sync) when it exists. `prepare`: first give
        its namespace what the chart renders into tenant namespaces (`prepare_namespace`)."""
        res = res_of(f"genfab.dev/v1alpha1/{PLURAL[doc['kind']]}")
        ns = doc["metadata"].get("namespace", "default")
        key = (res, ns, doc["metadata"]["name"])
        if prepare:
            self.prepare_namespace(ns)

        def go() -> dict[str, Any]:
            if key in self.cluster.store:
                result = self.cluster.patch(key, {"spec": copy.deepcopy(doc["spec"])})
                assert result is not None
                return result
            return self.cluster.create(res, ns, doc)
        return self.call(go)

    def get(self, kind: str, name: str, ns: str = "default") -> dict[str, Any] | None:
        res = res_of(f"genfab.dev/v1alpha1/{PLURAL[kind]}")
        return self.call(lambda: copy.deepcopy(self.cluster.store.get((res, ns, name))))

    def status(self, kind: str, name: str, ns: str = "default") -> dict[str, Any]:
        obj = self.get(kind, name, ns) or {}
        return dict(obj.get("status") or {})

    def objects(self, plural: str, ns: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        return self.call(lambda: copy.deepcopy(self.cluster.objects(plural, ns, selector)))

    def expire_watches(self) -> None:
        """End every watch; a watch again from any version seen so far gets 410 Gone (`GenfabCluster`)."""
        self.call(self.cluster.expire_watches)

    def delete(self, plural: str, name: str, ns: str = "default") -> None:
        self.call(lambda: self.cluster.delete((res_for(plural), ns, name)))

    def patch(self, kind: str, name: str, patch: dict[str, Any], ns: str = "default") -> None:
        res = res_of(f"genfab.dev/v1alpha1/{PLURAL[kind]}")
        self.call(lambda: self.cluster.patch((res, ns, name), patch))

    def wait(self, what: str, predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
        return wait_until(what, predicate, timeout, interval)


class OperatorProcess:
    """`python -m genfab.operator` against the emulator, like a Deployment's container."""

    def __init__(self, emulator: Emulator | None, workdir: Path, **env: str) -> None:
        """`emulator` None: against the server `env`'s KUBECONFIG names (a real one)."""
        self.emulator = emulator
        self.workdir = workdir
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.log = workdir / "operator.log"
        if emulator is not None:
            env = {"KUBECONFIG": str(emulator.kubeconfig(workdir / "kubeconfig")), **env}
        self.env = {**os.environ,
                    "GENFAB_PROGRESS_SECONDS": "0.2", "GENFAB_RESYNC_SECONDS": "2", "PYTHONUNBUFFERED": "1",
                    # The "cluster" and its stage Pods share this machine's disk: the tests' folders are the
                    # shared volume a chart would list in storage.filePrefixes.
                    "GENFAB_FILE_PREFIXES": json.dumps([tempfile.gettempdir(), str(REPO / "examples")]),
                    **env}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> OperatorProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "genfab.operator", "--metrics-port", str(self.metrics_port),
                 "--liveness", f"http://127.0.0.1:{self.health_port}/healthz", *args],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, like a node failure or an OOM kill."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def metrics(self) -> str:
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def healthy(self) -> bool:
        import urllib.request
        with contextlib.suppress(OSError), urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
            return bool(r.status == 200)
        return False

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def own_cluster(workdir: Path, prepare: Callable[[Emulator], None] | None = None, **env: str
                ) -> Iterator[tuple[Emulator, OperatorProcess]]:
    """An emulator of its own and an operator with `env` on it, live until the block ends (`prepare`: what
    the emulator holds before the operator starts)."""
    emu = Emulator().start()
    if prepare is not None:
        prepare(emu)
    op = OperatorProcess(emu, workdir, **env).start()
    try:
        emu.wait("operator liveness", op.healthy, timeout=60, interval=0.2)
        yield emu, op
    finally:
        op.stop()
        emu.stop()
