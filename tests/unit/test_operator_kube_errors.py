"""API errors classified once: what the work queue retries and what it does not."""

from __future__ import annotations

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
