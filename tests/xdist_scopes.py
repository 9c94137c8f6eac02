"""How `pytest -n 2` shares the tests between its workers (registered by tests/conftest.py where pytest-xdist
is installed): whole tiers or whole modules where tests share a server or a run, single tests elsewhere,
handed out in collection order (tests/conftest.py orders them longest first).

A scope is what one worker runs from start to end, one test after the other:
- each server-backed tier (`SERVER_TIERS`: the emulated and the real API server, podman's images) and the
  chart tier (its session-scoped renders) is one scope: its package- or session-scoped server starts once;
- every other module is one scope: the storage and docs tiers' module-scoped runs, S3 servers and browsers
  are made once, not once per worker, and a unit module's tests go out in one message, not one each.

The scopes come from the test ids' folders alone, so the controller (which collects nothing) sees them.
xdist's own `--dist loadgroup` cannot do this under pytest 9.2, whose test ids no longer take the `@group`
suffix xdist 3.8 appends (`Item.nodeid` is derived from its structured id): this replaces `--dist load`, the
default of `-n`, instead.
"""

from __future__ import annotations

from typing import Any

import pytest

try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # no xdist (the GPU machine's tier): the scopes are still named, nothing schedules them
    LoadScopeScheduling = object  # type: ignore[assignment,misc]

SERVER_TIERS = frozenset({"emulator", "realserver", "realcluster", "images"})
"""Tiers whose tests share one package-scoped server: one scope each."""
TIER_SCOPES = SERVER_TIERS | {"chart"}
"""Tiers that are one scope each (the chart tier's renders are session-scoped)."""
MODULE_SCOPES = frozenset({"storage", "docs"})
"""Tiers whose modules share runs, S3 servers and browsers (handed out before the unit tier's)."""


def scope_of(nodeid: str) -> str:
    """The scope of a test id: its tier or its module."""
    path = nodeid.split("::")[0]
    parts = path.split("/")
    tier = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
    if tier in TIER_SCOPES:
        return f"tier:{tier}"
    return path  # a module: a scope per test would cost a round trip to the controller per test (a second
    # each on two busy cores: 2,128 unit tests took 5 minutes handed out one by one, 1.7 by module)


class TierScopes(LoadScopeScheduling):
    """xdist's scope scheduler with genfab's scopes, in collection order (never re-sorted by size)."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        config.option.loadscopereorder = False
        super().__init__(config, log)

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    """`-n N` (xdist's `--dist load`): genfab's scopes. Any other `--dist` is xdist's own."""
    return TierScopes(config, log) if config.getvalue("dist") == "load" else None
