"""Real-server tier: genfab's CRDs, examples, rules and operator against Kubernetes' own CRD API
server (apiextensions-apiserver + etcd, built by scripts/real_apiserver.sh).

A machine without the two binaries skips the tier with one line; CI builds them and sets
GENFAB_REQUIRE_REAL_APISERVER=1, so there a missing or failing server is an error, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.realserver import server as real

pytestmark = pytest.mark.realserver
NOT_BUILT = ("the real CRD API server is not built here (scripts/real_apiserver.sh builds it from Debian's "
             "sources: root, about 6 minutes)")


@pytest.fixture(scope="package")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[real.RealApiServer]:
    if not real.available():
        if os.environ.get("GENFAB_REQUIRE_REAL_APISERVER") == "1":
            pytest.fail(NOT_BUILT + "; GENFAB_REQUIRE_REAL_APISERVER=1 requires it")
        pytest.skip(NOT_BUILT)
    with real.running(tmp_path_factory.mktemp("apiserver")) as server:
        yield server


@pytest.fixture(scope="package")
def installed(apiserver: real.RealApiServer) -> dict[str, Any]:
    """genfab's CRDs created on the real server: file name -> the server's answer (code and object)."""
    return real.install_crds(apiserver)


@pytest.fixture(scope="package")
def crds(installed: dict[str, Any]) -> dict[str, Any]:
    """The CRDs, installed: a test that needs them fails (not skips) when the server refused one."""
    refused = {n: a["body"].get("message") for n, a in installed.items() if a["code"] != 201}
    assert not refused, f"the real API server refused genfab's CRDs: {refused}"
    return installed
