"""A local page's HTTP server, for `genfab review` and `genfab mask --review`: Python's own threading
server with bounded connections, every request checked for the page's random token (in the printed
URL) and for naming this server in its Host header, so another site open in the same browser can
neither act on the page (it does not know the token) nor reach the server under another name (DNS
rebinding). A connection gets a slot only while it answers or sends its request in time: one that
trickles its request byte by byte is closed at `REQUEST_SECONDS`, and the one reading longest is closed
first when a new connection finds every slot held."""

from __future__ import annotations

import contextlib
import hmac
import http.server
import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from genfab.contract.text import shown

CONNECTION_SECONDS = 30
"""A connection that sends nothing for this long is closed (a half-sent request holds no thread)."""
REQUEST_SECONDS = 10.0
"""A request's line, headers and body arrive within this long of the connection's start (or of its last
answer, kept alive), however slowly they trickle; past it the connection is closed. The page's requests
are a few kilobytes: a browser sends one in milliseconds."""
MAX_CONNECTIONS = 32
"""Connections served at once. One more closes the connection that has been sending its request longest
(a slow or idle one, never one being answered); when every slot is answering, it is answered 503."""
FREED_SECONDS = 1.0
"""How long a new connection waits for the slot of the connection closed for it."""
LAST_REQUESTS_SECONDS = 1.0
"""How long the requests in flight when the page's work ended get before the server ends."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BoundedServer(http.server.ThreadingHTTPServer):
    """Python's threading server with a listen backlog and a cap on the connections served at once."""

    request_queue_size = 64
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._lock = threading.Lock()
        self._reading: dict[socket.socket, float] = {}
        """Connections sending a request (or kept alive, waiting for one): since when."""

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self._close_longest_reading()
            if not self.slots.acquire(timeout=FREED_SECONDS):
                with contextlib.suppress(OSError):
                    request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                    b"Connection: close\r\n\r\n")
                self.shutdown_request(request)
                return
        self.reading(request)
        super().process_request(request, client_address)

    def reading(self, connection: socket.socket) -> None:
        """`connection` starts sending a request: it has `REQUEST_SECONDS` from now."""
        with self._lock:
            self._reading[connection] = time.monotonic()

    def answering(self, connection: socket.socket) -> None:
        """`connection`'s request has arrived: no deadline while it is answered."""
        with self._lock:
            self._reading.pop(connection, None)

    def service_actions(self) -> None:
        """Each turn of `serve_forever`'s loop (half a second): close the connections past their deadline."""
        now = time.monotonic()
        with self._lock:
            late = [c for c, since in self._reading.items() if now - since > REQUEST_SECONDS]
        for connection in late:
            self._close(connection)

    def _close_longest_reading(self) -> None:
        with self._lock:
            longest = min(self._reading, key=self._reading.__getitem__, default=None)
        if longest is not None:
            self._close(longest)

    def _close(self, connection: socket.socket) -> None:
        """End a connection from outside its thread: its blocked read returns, its thread ends and frees
        its slot."""
        self.answering(connection)
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RD)  # its reads end; an answer already begun still goes out

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]  # one line, never a traceback on the person's terminal
        sys.stderr.write(f"genfab: a page request failed: {shown(type(exc).__name__)}: {shown(str(exc))[:200]}\n")

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.answering(request)
            self.slots.release()


class TokenHandler(http.server.BaseHTTPRequestHandler):
    """Requests that carry the token and this server's name; answers that no other page may frame,
    sniff or script."""

    token: ClassVar[str] = ""
    names: ClassVar[set[str]] = set()
    timeout = CONNECTION_SECONDS  # the socket's: a request that stalls is dropped, its thread freed

    server: BoundedServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        self.server.reading(self.connection)  # each request of a kept-alive connection has its deadline
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed and self.command != "POST":  # the whole request is here (a POST once its body is read)
            self.server.answering(self.connection)
        return parsed

    def _read_body(self, size: int) -> bytes:
        """The request's body (`size` from `_body_size`), under the request's deadline."""
        body = self.rfile.read(size)
        self.server.answering(self.connection)
        return body

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        elif self._allowed(query):
            self.get(url.path, query)

    def get(self, path: str, query: dict[str, list[str]]) -> None:
        """A GET with the token, from this server's name."""
        self._send(404, b"not found", "text/plain")

    def _allowed(self, query: dict[str, list[str]]) -> bool:
        token = (query.get("token") or [""])[0] or self.headers.get("X-Genfab-Token", "")
        if self.headers.get("Host", "") not in self.names:
            self._send(421, b"wrong host", "text/plain")
            return False
        if not hmac.compare_digest(token.encode("utf-8", "replace"), self.token.encode()):  # any text
            self._send(403, b"this page needs the token of the URL genfab printed", "text/plain")
            return False
        return True

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.server.answering(self.connection)
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                         "style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'")
        self.end_headers()
        self.wfile.write(body)

    def _body_size(self, limit: int, too_large: str) -> int | None:
        """The request body's length, or None once a 400/413 is answered."""
        length = self.headers.get("Content-Length") or "0"
        if not length.isascii() or not length.isdigit():  # "-1", "1e9", " 4": not a length
            self._send(400, b"Content-Length must be a whole number of bytes", "text/plain")
            return None
        if int(length) > limit:
            self._send(413, too_large.encode(), "text/plain")
            return None
        return int(length)


def bind(handler: type[TokenHandler], token: str, host: str, port: int, **state: Any) -> BoundedServer:
    """A server at `host:port` (0: any free port) answering with a subclass of `handler` that holds
    `state` (e.g. the page's `review`), the token, and the names the server can be reached by
    (loopback: `localhost` and `127.0.0.1` too)."""
    served: type[TokenHandler] = type(handler.__name__, (handler,), {**state, "token": token, "names": set()})
    server = BoundedServer((host, port), served)
    port = server.server_address[1]
    served.names.update({f"{host}:{port}"} | ({f"localhost:{port}", f"127.0.0.1:{port}"} if is_loopback(host)
                                              else set()))
    return server


def serve_until(server: BoundedServer, done: threading.Event, name: str, said: Callable[[], None]) -> None:
    """Serve in a thread until `done` is set (then `said()`, and the last requests get a moment) or
    Ctrl-C; the server is closed either way."""
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    try:
        while not done.wait(0.5):
            pass
        said()
        time.sleep(LAST_REQUESTS_SECONDS)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
