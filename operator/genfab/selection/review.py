"""`genfab review`'s page: worldexplorer's manual selection gate in a browser. Every waiting sample's
in-between views, each with its candidates beside the two views it must join; click (or keys) to
choose, one button applies every choice through `genfab.selection.choices.apply_choices` (the code of
`genfab select`), then the page says how the run goes on.

Served by Python's own HTTP server on loopback by default. Every request must carry the page's
random token (in the printed URL) and name this server in its Host header: another site open in the
same browser cannot post choices (it does not know the token) nor reach the server under another
name (DNS rebinding)."""

from __future__ import annotations

import contextlib
import hmac
import http.server
import ipaddress
import json
import secrets
import sys
import threading
from dataclasses import asdict
from html import escape
from importlib import resources
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from genfab.api.pipelines.worldexplorer import GAP_VIEWS, final_key
from genfab.api.status_document import StatusDocument
from genfab.contract import STATUS_KEY
from genfab.contract.documents import DocumentError
from genfab.contract.text import shown
from genfab.report.writer import MAX_DOCUMENT, MAX_IMAGE, ReportError, list_output
from genfab.selection.choices import ChoiceError, apply_choices, complete_count
from genfab.selection.waiting import folder_of, shown_keys, waiting_samples
from genfab.storage import Storage, StorageError

MAX_BODY = 4 << 20
CONNECTION_SECONDS = 30
"""A connection that sends nothing for this long is closed (a half-sent request holds no thread)."""
MAX_CONNECTIONS = 32
"""Connections served at once; one more is answered 503 and closed at once."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def going_on(executor: str | None) -> str:
    """How a run goes on once its samples are chosen, for the executor that wrote it."""
    if executor == "local":
        return ("run the same `genfab run` command again and the run goes on after the scaffold (committed samples "
                "are reused)")
    return "the operator sees the complete final/ folders and starts the expansion by itself"


def how_to_go_on(executor: str | None, complete: int, total: int) -> str:
    if complete == 0:
        return f"{total} sample(s) still wait for choices"
    return f"{complete} of {total} sample(s) complete: {going_on(executor)}"


class Review:
    """The gate's state and the choices' application, for one output."""

    def __init__(self, store: Storage, token: str | None = None) -> None:
        self.store = store
        self.token = token or secrets.token_urlsafe(24)
        self.executor: str | None = None
        try:
            if store.exists(STATUS_KEY):
                self.executor = StatusDocument.read(store.read_at_most(STATUS_KEY, MAX_DOCUMENT, STATUS_KEY),
                                                    STATUS_KEY).executor
        except (StorageError, DocumentError):  # a status genfab did not write
            self.executor = None
        self.allowed: set[str] = set()
        self.shown: set[str] = set()
        """The samples the page was last given: the only ones a choice may name."""
        self.all_chosen = threading.Event()
        """Set once an apply left no sample waiting (the page has had its answer): the server may end."""

    def state(self) -> dict[str, Any]:
        waiting = waiting_samples(list_output(self.store))
        self.allowed = shown_keys(waiting)
        self.shown = {w.sample for w in waiting}
        return {"output": self.store.uri, "executor": self.executor,
                "samples": [{"sample": w.sample, "folder": folder_of(w.sample),
                             "gaps": [asdict(g) for g in w.gaps]} for w in waiting]}

    def image(self, key: str) -> bytes | None:
        if key not in self.allowed:
            return None
        try:
            return self.store.read_at_most(key, MAX_IMAGE, key)
        except StorageError:  # StorageTooLarge included
            return None

    def apply(self, choices: list[Any]) -> dict[str, Any]:
        chosen: dict[tuple[str, str], int] = {}
        for item in choices:
            if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
                    or item[1] not in GAP_VIEWS or not isinstance(item[2], int) or isinstance(item[2], bool)):
                return {"ok": False, "error": f"a choice must be [sample, view, candidate], got {item!r}"}
            if item[0] not in self.shown:
                return {"ok": False, "error": f"{item[0][:200]!r} is not a sample this page shows; nothing was copied"}
            chosen[(item[0], item[1])] = item[2]
        if not chosen:
            return {"ok": False, "error": "nothing chosen: click a candidate first"}
        try:
            lines = apply_choices(self.store, folder_of, tuple(final_key(g) for g in GAP_VIEWS), chosen)
        except (ChoiceError, StorageError) as exc:
            return {"ok": False, "error": str(exc)}
        complete = complete_count(lines)
        left = len(waiting_samples(list_output(self.store)))
        return {"ok": True, "lines": lines, "complete": complete, "allChosen": left == 0,
                "next": how_to_go_on(self.executor, complete, len(lines))
                + ("" if left else f"; {left} sample(s) still wait")}


class BoundedServer(http.server.ThreadingHTTPServer):
    """Python's threading server with a listen backlog and a cap on the connections served at once."""

    request_queue_size = 64
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]  # one line, never a traceback on the person's terminal
        sys.stderr.write(f"genfab review: a request failed: {shown(type(exc).__name__)}: {shown(str(exc))[:200]}\n")

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def make_server(review: Review, host: str, port: int) -> http.server.ThreadingHTTPServer:
    class Handler(_Handler):
        pass

    Handler.review = review
    server = BoundedServer((host, port), Handler)
    Handler.names = {f"{host}:{server.server_address[1]}"}
    if is_loopback(host):
        Handler.names |= {f"localhost:{server.server_address[1]}", f"127.0.0.1:{server.server_address[1]}"}
    return server


class _Handler(http.server.BaseHTTPRequestHandler):
    review: Review
    names: ClassVar[set[str]] = set()
    timeout = CONNECTION_SECONDS  # the socket's: a request that stalls is dropped, its thread freed

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _allowed(self, query: dict[str, list[str]]) -> bool:
        token = (query.get("token") or [""])[0] or self.headers.get("X-Genfab-Token", "")
        if self.headers.get("Host", "") not in self.names:
            self._send(421, b"wrong host", "text/plain")
            return False
        if not hmac.compare_digest(token.encode("utf-8", "replace"), self.review.token.encode()):  # any text
            self._send(403, b"this page needs the token of the URL genfab review printed", "text/plain")
            return False
        return True

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                         "style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
            return
        if not self._allowed(query):
            return
        try:
            self._get(url.path, query)
        except (ReportError, StorageError) as exc:  # the output cannot be listed or read now: one line
            self._send(503, str(exc).encode(), "text/plain; charset=utf-8")

    def _get(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/":
            self._send(200, page(self.review.token, self.review.state()).encode(), "text/html; charset=utf-8")
        elif path == "/state":
            self._send(200, json.dumps(self.review.state()).encode(), "application/json")
        elif path == "/image":
            data = self.review.image((query.get("key") or [""])[0])
            if data is None:
                self._send(404, b"no such picture on this page", "text/plain")
            else:
                self._send(200, data, "image/png")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/apply" or not self._allowed(parse_qs(url.query)):
            if url.path != "/apply":
                self._send(404, b"not found", "text/plain")
            return
        length = self.headers.get("Content-Length") or "0"
        if not length.isascii() or not length.isdigit():  # "-1", "1e9", " 4": not a length
            self._send(400, b"Content-Length must be a whole number of bytes", "text/plain")
            return
        size = int(length)
        if size > MAX_BODY:
            self._send(413, b"too many choices in one request", "text/plain")
            return
        try:
            body = json.loads(self.rfile.read(size) or b"{}")
            result = self.review.apply(body.get("choices") or [])
        except (ValueError, AttributeError, TypeError, RecursionError):
            result = {"ok": False, "error": "the request is not the page's JSON"}
        self._send(200 if result["ok"] else 400, json.dumps(result).encode(), "application/json")
        if result.get("allChosen"):  # answered first: then `genfab review` says so and ends
            self.review.all_chosen.set()


def page(token: str, state: dict[str, Any]) -> str:
    # inside <script>: no `<` at all (a folder named `<!--<script>` would change how the page parses)
    data = json.dumps({"token": token, "state": state}).replace("<", "\\u003c").replace(">", "\\u003e")
    return PAGE.replace("__OUTPUT__", escape(state["output"])).replace("__DATA__", data)


PAGE = resources.files("genfab.selection").joinpath("review_page.html").read_text(encoding="utf-8")
"""The page: its script renders the state, takes clicks and keys, and posts the choices."""
