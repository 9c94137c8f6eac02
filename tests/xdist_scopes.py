"""How `pytest -n 2` shares the tests between its workers (registered by tests/conftest.py where pytest-xdist
is installed): whole tiers or whole modules where tests share a server or a run, single tests elsewhere,
handed out in collection order (tests/conftest.py orders them longest first).

A scope is what one worker runs from start to end, one test after the other:
- each server-backed tier (`SERVER_TIERS`: the emulated and the real API server, podman's images) and the
  chart tier (its session-scoped renders) is one scope: its package- or session-scoped server starts once;
- each module of the storage and docs tiers is one scope: its module-scoped runs, S3 server and browser are
  made once, not once per worker;
- every other test (the unit tier) is a scope of its own and goes to whichever worker is free.

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

SERVER_TIERS = frozenset({"emulator", "realserver", "images"})
"""Tiers whose tests share one package-scoped server: one scope each."""
TIER_SCOPES = SERVER_TIERS | {"chart"}
"""Tiers that are one scope each (the chart tier's renders are session-scoped)."""
MODULE_SCOPES = frozenset({"storage", "docs"})
"""Tiers whose modules are one scope each (module-scoped runs, S3 servers and browsers)."""


def scope_of(nodeid: str) -> str:
    """The scope of a test id: its tier, its module, or itself."""
    path = nodeid.split("::")[0]
    parts = path.split("/")
    tier = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
    if tier in TIER_SCOPES:
        return f"tier:{tier}"
    if tier in MODULE_SCOPES:
        return path
    return nodeid


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
