"""A headless Chromium (Debian's `chromium`) driven over the DevTools protocol with aiohttp, which the
operator's kopf already brings: open a page, collect what a reader's browser would complain about
(uncaught exceptions, `console.error`, failed loads, any request to a host other than the local
server), and take a screenshot."""

from __future__ import annotations

import asyncio
import base64
import functools
import http.server
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

# The flags Debian's Chromium needs on these machines: as root (no sandbox), no GPU, and nothing that
# reaches for Google's hosts on its own (on a closed network those connections fail by the dozen).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
         "--remote-debugging-port=0", "--remote-allow-origins=*")


VIEWPORT = (1280, 900)
"""Screenshots are of this viewport (a laptop's window), whatever the headless window's own size."""


def find_chromium() -> str | None:
    return os.environ.get("GENFAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """The built site over HTTP on 127.0.0.1 (search and the theme's scripts need http://, not file://)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class PageVisit:
    url: str
    problems: list[str] = field(default_factory=list)
    """Uncaught exceptions, console errors, failed loads, requests to another host."""
    title: str = ""
    heading: str = ""
    text_length: int = 0
    screenshot: bytes = b""
    measured: Any = None
    """What the visit's `measure` expression returned (JSON), run after the page settled."""
    parts: list[bytes] = field(default_factory=list)
    """Screenshots of the elements the visit's `shoot` selector matched, each whole (beyond the viewport)."""


@contextmanager
def chromium(binary: str) -> Iterator[str]:
    """A running headless Chromium; yields its DevTools HTTP endpoint."""
    profile = Path(tempfile.mkdtemp(prefix="genfab-chromium-"))
    # Its own process group: Chromium's renderer, GPU and crash-handler children outlive the browser
    # process by a moment and keep writing into the profile, so all of them are stopped before it goes.
    process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{binary} did not start (exit {process.poll()})")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text().split()[0]}"
    finally:
        _stop_group(process)
        shutil.rmtree(profile, ignore_errors=True)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the browser's whole process group, SIGKILL to whatever is left after 10 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            process.poll()  # reap the leader, or the group never empties
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def visit(devtools: str, url: str, settle_s: float = 1.0, measure: str = "", shoot: str = "",
          viewport: tuple[int, int] = VIEWPORT) -> PageVisit:
    """Open `url` at `viewport`; `measure`: a JavaScript expression whose (JSON-able) value is kept,
    `shoot`: a CSS selector whose matching elements are each photographed whole."""
    return asyncio.run(_visit(devtools, url, settle_s, measure, shoot, viewport))


@asynccontextmanager
async def _page(devtools: str, url: str, result: PageVisit, settle_s: float,
                viewport: tuple[int, int] = VIEWPORT) -> AsyncIterator[_Session]:
    """A new tab at `viewport` with `url` loaded and `settle_s` waited; its problems go to `result`."""
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{devtools}/json/new?about:blank") as response:
            target = await response.json(content_type=None)
        try:
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                session = _Session(ws, result, urlsplit(url).netloc)
                for domain in ("Page", "Runtime", "Log", "Network"):
                    await session.call(f"{domain}.enable")
                await session.call("Emulation.setDeviceMetricsOverride", width=viewport[0], height=viewport[1],
                                   deviceScaleFactor=1, mobile=False)
                loaded = session.expect("Page.loadEventFired")
                await session.call("Page.navigate", url=url)
                await asyncio.wait_for(loaded, 30)
                await asyncio.sleep(settle_s)  # the page's scripts run after load (search index, palette)
                try:
                    yield session
                finally:
                    session.reader.cancel()
        finally:
            async with http.get(f"{devtools}/json/close/{target['id']}"):
                pass


async def _visit(devtools: str, url: str, settle_s: float, measure: str = "", shoot: str = "",
                 viewport: tuple[int, int] = VIEWPORT) -> PageVisit:
    result = PageVisit(url)
    async with _page(devtools, url, result, settle_s, viewport) as session:
        facts = await session.call("Runtime.evaluate", returnByValue=True, expression=(
            "JSON.stringify({title: document.title, h1: (document.querySelector('article h1, h1') || "
            "{}).innerText || '', text: document.body.innerText.length})"))
        page = json.loads(facts["result"]["value"])
        result.title, result.heading, result.text_length = page["title"], page["h1"], page["text"]
        shot = await session.call("Page.captureScreenshot", format="png")
        result.screenshot = base64.b64decode(shot["data"])
        if measure:
            found = await session.call("Runtime.evaluate", returnByValue=True,
                                       expression=f"JSON.stringify({measure})")
            result.measured = json.loads(found["result"]["value"])
        if shoot:
            boxes = await session.call("Runtime.evaluate", returnByValue=True, expression=(
                f"JSON.stringify([...document.querySelectorAll({json.dumps(shoot)})].map(e => {{"
                "const r = e.getBoundingClientRect(); return {x: r.left + scrollX, y: r.top + scrollY, "
                "width: r.width, height: r.height}; }))"))
            for box in json.loads(boxes["result"]["value"]):
                part = await session.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                          clip={**box, "scale": 1})
                result.parts.append(base64.b64decode(part["data"]))
    return result


class _Session:
    """One DevTools connection: numbered calls, and events sorted into the visit's problems."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, result: PageVisit, local_host: str) -> None:
        self.ws, self.result, self.local_host = ws, result, local_host
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        return await asyncio.wait_for(future, 30)

    def expect(self, event: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[event] = future
        return future

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self.pending.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(f"DevTools: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
                continue
            method, params = data.get("method", ""), data.get("params", {})
            if method in self.waiting and not self.waiting[method].done():
                self.waiting.pop(method).set_result(None)
            problem = self._problem(method, params)
            if problem:
                self.result.problems.append(problem)

    def _problem(self, method: str, params: dict[str, Any]) -> str | None:
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            return f"exception: {details.get('exception', {}).get('description') or details.get('text')}"
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            return "console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
        if method == "Log.entryAdded" and params["entry"].get("level") == "error":
            return f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}".strip()
        if method == "Network.requestWillBeSent":
            request_url = params["request"]["url"]
            parts = urlsplit(request_url)
            if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != self.local_host:
                return f"request to another host: {request_url}"
        if method == "Network.loadingFailed" and not params.get("canceled"):
            return f"load failed: {params.get('errorText')}"
        return None


Step = tuple[str, ...]
"""An interaction: ("click", css), ("key", key[, "ctrl"]), ("wait", js), ("eval", js), ("shot", "")."""


def interact(devtools: str, url: str, steps: list[Step], settle_s: float = 0.5) -> tuple[PageVisit, list[Any]]:
    """Open `url` and play `steps` as a person would: real mouse clicks at an element's centre and real
    key presses (the page's own listeners see them as from a user). Returns the visit (problems) and
    each step's result (`eval`: the value, `shot`: PNG bytes, others None)."""
    return asyncio.run(_interact(devtools, url, steps, settle_s))


async def _interact(devtools: str, url: str, steps: list[Step], settle_s: float) -> tuple[PageVisit, list[Any]]:
    result, outputs = PageVisit(url), []
    async with _page(devtools, url, result, settle_s) as session:
        for step in steps:
            outputs.append(await _step(session, step))
    return result, outputs


async def _evaluate(session: _Session, expression: str) -> Any:
    found = await session.call("Runtime.evaluate", returnByValue=True, awaitPromise=True,
                               expression=f"(async () => JSON.stringify(await ({expression})))()")
    value = found["result"].get("value")
    return json.loads(value) if isinstance(value, str) else None


async def _step(session: _Session, step: Step) -> Any:
    kind = step[0]
    if kind == "click":
        box = await _evaluate(session, f"(() => {{ const e = document.querySelector({json.dumps(step[1])}); "
                                       "if (!e) return null; e.scrollIntoView({block: 'center'}); "
                                       "const r = e.getBoundingClientRect(); "
                                       "return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        if box is None:
            raise AssertionError(f"nothing to click: {step[1]}")
        for event in ("mousePressed", "mouseReleased"):
            await session.call("Input.dispatchMouseEvent", type=event, x=box[0], y=box[1], button="left",
                               clickCount=1)
        return None
    if kind == "key":
        key, ctrl = step[1], len(step) > 2 and step[2] == "ctrl"
        codes = {"Enter": 13, "ArrowDown": 40, "ArrowUp": 38, "ArrowLeft": 37, "ArrowRight": 39}
        text = key if len(key) == 1 else ("\r" if key == "Enter" else "")
        params: dict[str, Any] = {"key": key, "modifiers": 2 if ctrl else 0,
                                  "windowsVirtualKeyCode": codes.get(key, ord(key.upper()) if len(key) == 1 else 0)}
        await session.call("Input.dispatchKeyEvent", type="keyDown", text=text if not ctrl else "", **params)
        await session.call("Input.dispatchKeyEvent", type="keyUp", **params)
        return None
    if kind == "wait":
        deadline = time.monotonic() + 15
        while not await _evaluate(session, step[1]):
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never met: {step[1]}")
            await asyncio.sleep(0.1)
        return None
    if kind == "eval":
        return await _evaluate(session, step[1])
    if kind == "shot":
        shot = await session.call("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])
    raise ValueError(f"unknown step {kind}")
