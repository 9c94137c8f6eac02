"""API errors classified once: what the work queue retries and what it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from genfab.operator.kube import Conflict, NotFound, Permanent, Temporary, _classify


@pytest.mark.parametrize("status, body, kind, says", [
    (404, b'{"message": "jobs.batch \\"x\\" not found"}', NotFound, 'GET /p: 404 jobs.batch "x" not found'),
    (409, b'{"message": "already exists"}', Conflict, "GET /p: 409 already exists"),
    (429, b"", Temporary, "GET /p: 429 Too Many Requests"),
    (503, b"<html>", Temporary, "GET /p: 503 Too Many Requests"),
    (422, b'{"message": "spec.template: Invalid"}', Permanent, "GET /p: 422 spec.template: Invalid"),
    (403, None, Permanent, "GET /p: 403 Too Many Requests"),
])
def test_classify(status: int, body: bytes | None, kind: type, says: str) -> None:
    err = _classify(status, "Too Many Requests", body, "GET", "/p")
    assert type(err) is kind and str(err) == says and err.status == status


@pytest.mark.parametrize("prefix", ["", "/k8s/clusters/c-1"])
def test_requests_go_to_the_servers_path_with_its_token(prefix: str) -> None:
    """The REST calls use the API server's connection pool directly: a server URL with a path (an
    API proxy such as Rancher's) keeps it, the bearer token and the query string arrive, and the
    connection is reused across calls."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from genfab.operator.connection import Connection
    from genfab.operator.kube import Kube

    seen: list[tuple[str, str, str | None, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.command, self.path, self.headers.get("Authorization"), body))
            out = json.dumps({"ok": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PATCH = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        kube = Kube(Connection(server=f"http://127.0.0.1:{server.server_port}{prefix}", token=lambda: "t0ken"))
        assert kube.get("/api/v1/namespaces/a/pods/p") == {"ok": f"{prefix}/api/v1/namespaces/a/pods/p"}
        kube.request("GET", "/api/v1/pods", query={"labelSelector": "a=b"})
        kube.patch("/apis/genfab.dev/v1alpha1/namespaces/a/scenejobs/s/status", {"status": {"phase": "Running"}})
    finally:
        server.shutdown()
    assert seen == [
        ("GET", f"{prefix}/api/v1/namespaces/a/pods/p", "Bearer t0ken", b""),
        ("GET", f"{prefix}/api/v1/pods?labelSelector=a%3Db", "Bearer t0ken", b""),
        ("PATCH", f"{prefix}/apis/genfab.dev/v1alpha1/namespaces/a/scenejobs/s/status", "Bearer t0ken",
         b'{"status": {"phase": "Running"}}'),
    ]
    assert kube._pool is not None and kube._pool.num_connections == 1


def test_an_unreadable_token_file_is_worth_retrying(tmp_path: Path) -> None:
    from genfab.operator.connection import Connection, TokenFile
    from genfab.operator.kube import Kube

    kube = Kube(Connection(server="http://127.0.0.1:9", token=TokenFile(tmp_path / "absent")))
    with pytest.raises(Temporary, match="GET /api/v1/pods: FileNotFoundError"):
        kube.get("/api/v1/pods")
