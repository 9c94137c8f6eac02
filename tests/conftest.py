"""Tiers are folders: tests/unit -> `unit`, tests/emulator -> `emulator`, and so on."""

from __future__ import annotations

from pathlib import Path

import pytest

TIERS = ("unit", "emulator", "storage", "chart", "gpu")
ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.fspath).resolve().relative_to(ROOT / "tests").parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
