"""The per-tier time budgets (tests/budgets.py): the sums, the line that names an overrun, and a real
pytest session whose slowed test makes `--tier-budgets` fail the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.budgets import Overrun, overruns, tier_table
from tests.helpers import ROOT

SECONDS = {("unit", "a"): 1.0, ("unit", "b"): 2.5, ("storage", "c"): 4.0, ("slow", "d"): 30.0}


@pytest.mark.parametrize(("budgets", "over"), [
    ({"unit": 10.0, "storage": 10.0, "slow": 60.0}, []),
    ({"unit": 3.5, "storage": 10.0, "slow": 60.0}, []),  # exactly at the budget is within it
    ({"unit": 3.0, "storage": 10.0, "slow": 60.0}, ["unit"]),
    ({"unit": 3.0, "storage": 3.9, "slow": 20.0}, ["slow", "storage", "unit"]),
    ({"storage": 10.0}, []),  # a tier without a budget has no limit
])
def test_a_tier_over_its_budget_is_named(budgets: dict[str, float], over: list[str]) -> None:
    assert [o.tier for o in overruns(SECONDS, budgets)] == over


def test_an_overrun_names_its_seconds_budget_and_slowest_tests() -> None:
    (found,) = overruns(SECONDS, {"unit": 3.0})
    assert found == Overrun("unit", 3.5, 3.0, (("b", 2.5), ("a", 1.0)))
    assert found.line() == ("tier 'unit' took 3.5 s of test time, over its budget of 3 s (tests/budgets.py); "
                            "slowest: b 2.5 s, a 1.0 s")
    assert tier_table(SECONDS, {"unit": 3.0})[-1].split() == ["unit", "2", "tests", "3.5", "s", "of", "3", "s"]


def session(folder: Path, sleep: float, *flags: str, waiting: float = 0.0) -> subprocess.CompletedProcess[str]:
    """A pytest session in `folder` with one tier (`unit`, budget 0.5 s) whose test sleeps `sleep` s, of which
    its setup says it spent `waiting` s waiting outside the suite (as the images tier waits for CI's build)."""
    (folder / "tests" / "unit").mkdir(parents=True)
    (folder / "conftest.py").write_text(
        "import pytest\nfrom tests.budgets import TierBudgets\n\n"
        "def pytest_addoption(parser):\n    parser.addoption('--tier-budgets', action='store_true')\n\n"
        "def pytest_configure(config):\n"
        "    config.pluginmanager.register(TierBudgets({'unit': 0.5}, config.getoption('--tier-budgets')))\n\n"
        "def pytest_collection_modifyitems(items):\n"
        "    for item in items:\n        item.add_marker(pytest.mark.unit)\n")
    (folder / "tests" / "unit" / "test_slowed.py").write_text(
        f"import time\nimport pytest\nfrom tests.budgets import WAITING\n\n"
        f"@pytest.fixture\ndef waits(request):\n    time.sleep({waiting})\n"
        f"    request.node.user_properties.append((WAITING, {waiting}))\n\n"
        f"def test_slowed_on_purpose(waits):\n    time.sleep({sleep})\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider",
                           "-o", "markers=unit", "--rootdir", str(folder), "--basetemp", str(folder / "tmp"),
                           str(folder / "tests"), *flags],
                          cwd=folder, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_test_slowed_on_purpose_fails_the_run_under_tier_budgets(tmp_path: Path) -> None:
    slowed = session(tmp_path / "slowed", 0.8, "--tier-budgets")
    assert slowed.returncode == 1, slowed.stdout
    assert "1 passed" in slowed.stdout and "BUDGET EXCEEDED: tier 'unit' took 0.8 s" in slowed.stdout
    assert "slowest: tests/unit/test_slowed.py::test_slowed_on_purpose 0.8 s" in slowed.stdout
    unchecked = session(tmp_path / "unchecked", 0.8)  # without the flag: the table, no failure
    assert unchecked.returncode == 0 and "unit            1 tests" in unchecked.stdout, unchecked.stdout
    fast = session(tmp_path / "fast", 0.0, "--tier-budgets")
    assert fast.returncode == 0 and "BUDGET EXCEEDED" not in fast.stdout, fast.stdout


def test_seconds_spent_waiting_outside_the_suite_are_not_the_tiers(tmp_path: Path) -> None:
    waited = session(tmp_path / "waited", 0.2, "--tier-budgets", waiting=1.0)
    assert waited.returncode == 0 and "BUDGET EXCEEDED" not in waited.stdout, waited.stdout
    assert "1 tests      0.2 s of" in waited.stdout, waited.stdout  # counted once, not from each phase
    slowed = session(tmp_path / "slowed", 0.8, "--tier-budgets", waiting=1.0)
    assert slowed.returncode == 1 and "BUDGET EXCEEDED: tier 'unit' took 0.8 s" in slowed.stdout, slowed.stdout
