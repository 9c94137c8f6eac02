"""One cluster made of two API servers: genfab's kinds on Kubernetes' own CRD server, the rest on the
emulator.

The real CRD server (apiextensions-apiserver) serves `/apis` only: CustomResourceDefinitions and
custom resources, with no core objects. genfab's operator also needs Jobs, Pods, ConfigMaps, Events
and Namespaces, and a Job controller and kubelet (tests/emulator). `SplitProxy` is a loopback HTTP
server, like the single endpoint a real kube-apiserver gives: requests under `/apis/genfab.dev/` and
`/apis/apiextensions.k8s.io/` go to the real server (with the tests' system:masters client
certificate), everything else to the emulator. Watches stream through chunk by chunk. The emulator's
garbage collector cannot see owners on the other server, so `collect_garbage` plays Kubernetes'
garbage collector for a deleted genfab resource. Test-only code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web

from tests.emulator.harness import Emulator, token_kubeconfig
from tests.realserver import server as real
from tests.realserver.requests import MERGE, path_of
from tests.realserver.server import RealApiServer

REAL_PREFIXES = ("/apis/genfab.dev/", "/apis/genfab.dev?", "/apis/apiextensions.k8s.io/")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host",
              "authorization"}


class SplitProxy:
    def __init__(self, real: RealApiServer, emulator: Emulator) -> None:
        self.real, self.emulator = real, emulator
        self.url = ""
        self.routed = {"real": 0, "emulator": 0}
        self.writes = 0
        self.pruned: list[str] = []
        """Fields the operator wrote to the real server that its answer lacks (pruned by the schema)."""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=lambda: self._loop.run_until_complete(self._serve()),
                                        name="split-proxy", daemon=True)

    def start(self) -> SplitProxy:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the split proxy did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def kubeconfig(self, path: Path) -> Path:
        return token_kubeconfig(path, self.url, "split")

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        context = ssl.create_default_context(cafile=str(self.real.certs["ca"]))
        context.load_cert_chain(str(self.real.certs["admin"]), str(self.real.certs["admin-key"]))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            self._session, self._ssl = session, context
            app = aiohttp.web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._forward)
            # Open watches would hold its cleanup for aiohttp's default 60 s (the thread's join gave up at 10).
            runner = aiohttp.web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

    async def _forward(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        target = request.path_qs
        real = target.startswith(REAL_PREFIXES) or target in ("/apis/genfab.dev", "/apis/apiextensions.k8s.io")
        self.routed["real" if real else "emulator"] += 1
        base = self.real.url if real else self.emulator.url
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        if not real and "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        body = await request.read()
        try:
            upstream = await self._session.request(request.method, base + target, headers=headers,
                                                   data=body or None, ssl=self._ssl if real else None,
                                                   allow_redirects=False)
        except aiohttp.ClientError as exc:
            return aiohttp.web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                              "code": 503, "reason": "ServiceUnavailable",
                                              "message": f"split proxy: {exc}"}, status=503)
        async with upstream:
            headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            if "watch=" not in request.query_string:
                data = await upstream.read()
                if real and request.method == "PATCH" and upstream.status == 200:  # merge patches
                    self._check_kept(request.path, body, data)
                return aiohttp.web.Response(status=upstream.status, headers=headers, body=data)
            response = aiohttp.web.StreamResponse(status=upstream.status, headers=headers)
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientPayloadError, asyncio.CancelledError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
            return response

    def _check_kept(self, path: str, sent: bytes, answer: bytes) -> None:
        """Every value the operator wrote is in the server's answer: the CRD's schema pruned nothing."""
        with contextlib.suppress(ValueError):
            patch, stored = json.loads(sent or b"null"), json.loads(answer)
            self.writes += 1
            self.pruned.extend(f"{path}: {where}" for where in missing(patch, stored))

    def collect_garbage(self, owner_uid: str) -> None:
        """Kubernetes' garbage collector for a genfab resource deleted on the real server: its
        dependents on the emulator (Jobs, ConfigMaps, Services, ...) go, and theirs in turn."""
        self.emulator.call(self.emulator.cluster._collect, owner_uid)


def missing(sent: Any, stored: Any, where: str = "") -> list[str]:
    """Where a merge patch's values are not in the object it produced (null deletes; lists replace)."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [where or "."]
        return [m for key, value in sent.items() if value is not None
                for m in missing(value, stored.get(key), f"{where}.{key}")]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [where]
        return [m for i, (a, b) in enumerate(zip(sent, stored, strict=True)) for m in missing(a, b, f"{where}[{i}]")]
    return [] if sent == stored else [where]


class SplitCluster:
    """kubectl-like helpers: genfab's resources on the real server, their children on the emulator."""

    def __init__(self, apiserver: real.RealApiServer, emulator: Emulator, proxy: SplitProxy) -> None:
        self.real, self.emulator, self.proxy = apiserver, emulator, proxy

    def apply(self, doc: dict[str, Any]) -> Any:
        """Create, or patch the spec of an existing resource (a GitOps sync); the server's answer."""
        ns, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
        self.emulator.prepare_namespace(ns)
        resp = self.real.request("POST", path_of(doc["kind"], ns=ns), doc)
        if resp.status_code == 409:
            resp = self.real.request("PATCH", path_of(doc["kind"], name, ns=ns), {"spec": doc["spec"]},
                                     content_type=MERGE)
        return resp

    def get(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        resp = self.real.request("GET", path_of(doc["kind"], doc["metadata"]["name"], ns=doc["metadata"]["namespace"]))
        return resp.json() if resp.status_code == 200 else None

    def status(self, doc: dict[str, Any]) -> dict[str, Any]:
        return dict((self.get(doc) or {}).get("status") or {})

    def wait_status(self, doc: dict[str, Any], what: str, check: Any, timeout: float = 60) -> dict[str, Any]:
        last: list[dict[str, Any]] = [{}]

        def probe() -> Any:
            last[0] = st = self.status(doc)
            return st if st and check(st) else None
        try:
            return self.real.wait(what, probe, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status: {last[0]}") from None

    def jobs(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        return self.emulator.objects("jobs", doc["metadata"]["namespace"],
                                     f"genfab.dev/resource={doc['metadata']['name']}")

    def row(self, doc: dict[str, Any]) -> dict[str, Any]:
        """What `kubectl get <kind> <name>` prints, from the real server's Table."""
        table = self.real.request("GET", path_of(doc["kind"], ns=doc["metadata"]["namespace"])
                                  + f"?fieldSelector=metadata.name={doc['metadata']['name']}", accept=real.TABLE).json()
        (row,) = table["rows"]
        return dict(zip([c["name"] for c in table["columnDefinitions"]], row["cells"], strict=True))
