"""Per-tier time budgets: the seconds each test tier may take, checked from pytest's own reports.

`pytest --tier-budgets` (CI passes it) adds up every test's setup, call and teardown seconds per tier
(tests/unit -> `unit`, the slow end-to-end tests as `slow` whatever their folder) and fails the run when
a tier's sum exceeds its budget, naming the tier, its seconds, its budget and its five slowest tests. The
sums are test seconds, not wall seconds: under `-n 2` both workers' seconds count, so a budget does not
move with the number of workers, and a test slowed on purpose moves its tier's sum by exactly its delay.

The budgets are measured sums on a 2-core machine (CI's) with headroom: a tier that grows past its
budget shows up in the commit that made it slower, not three commits later as a CI time-out.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping

import pytest

BUDGETS: dict[str, float] = {
    "unit": 200.0,
    "emulator": 340.0,
    "realserver": 200.0,
    "realcluster": 200.0,
    "images": 110.0,
    "storage": 800.0,
    "chart": 20.0,
    "docs": 140.0,
    "gpu": 30.0,
    "slow": 2150.0,
}
"""Tier -> budget in test seconds (the sum over its tests of setup + call + teardown)."""

SLOW = "slow"
WAITING = "waiting_outside_the_suite_s"
"""A test's `user_properties` key: seconds of its setup spent waiting for work outside the suite (CI's
background image build), left out of its tier's sum: they measure the build, not the tier."""


@dataclasses.dataclass(frozen=True)
class Overrun:
    tier: str
    seconds: float
    budget: float
    slowest: tuple[tuple[str, float], ...]

    def line(self) -> str:
        worst = ", ".join(f"{name} {secs:.1f} s" for name, secs in self.slowest)
        return (f"tier {self.tier!r} took {self.seconds:.1f} s of test time, over its budget of {self.budget:g} s "
                f"(tests/budgets.py); slowest: {worst}")


def overruns(per_test: Mapping[tuple[str, str], float], budgets: Mapping[str, float]) -> list[Overrun]:
    """The tiers whose tests' seconds add up to more than their budget. `per_test` maps (tier, test id) to
    that test's seconds; a tier without a budget has no limit."""
    by_tier: dict[str, dict[str, float]] = defaultdict(dict)
    for (tier, test), seconds in per_test.items():
        by_tier[tier][test] = seconds
    found = []
    for tier, tests in sorted(by_tier.items()):
        total = sum(tests.values())
        if tier in budgets and total > budgets[tier]:
            slowest = tuple(sorted(tests.items(), key=lambda kv: -kv[1])[:5])
            found.append(Overrun(tier, total, budgets[tier], slowest))
    return found


def tier_table(per_test: Mapping[tuple[str, str], float], budgets: Mapping[str, float]) -> list[str]:
    """One line per tier: its tests, its seconds and its budget."""
    count: dict[str, int] = defaultdict(int)
    total: dict[str, float] = defaultdict(float)
    for (tier, _), seconds in per_test.items():
        count[tier] += 1
        total[tier] += seconds
    return [f"{tier:<11} {count[tier]:>5} tests {total[tier]:>8.1f} s of {budgets.get(tier, float('inf')):>6g} s"
            for tier in sorted(total)]


class TierBudgets:
    """The plugin: on the controller (or a plain run), one figure per test from its reports."""

    def __init__(self, budgets: Mapping[str, float], enforce: bool) -> None:
        self.budgets = dict(budgets)
        self.enforce = enforce
        self.durations: dict[tuple[str, str], float] = defaultdict(float)
        self.waited: dict[tuple[str, str], float] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        parts = report.nodeid.split("::")[0].split("/")
        folder = parts[1] if len(parts) > 2 and parts[0] == "tests" else None  # tests/<tier>/...
        tier = SLOW if SLOW in report.keywords else folder
        if tier is not None:
            self.durations[(tier, report.nodeid)] += report.duration
            # a test's properties so far (each later phase's report repeats the earlier ones)
            self.waited[(tier, report.nodeid)] = sum(float(v) for k, v in report.user_properties if k == WAITING)

    @property
    def seconds(self) -> dict[tuple[str, str], float]:
        """Each test's seconds (setup + call + teardown), less what it spent waiting outside the suite."""
        return {key: max(0.0, spent - self.waited.get(key, 0.0)) for key, spent in self.durations.items()}

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        seconds = self.seconds
        if not seconds:
            return
        terminalreporter.write_sep("=", "test seconds per tier (tests/budgets.py)")
        for line in tier_table(seconds, self.budgets):
            terminalreporter.write_line(line)
        for overrun in overruns(seconds, self.budgets) if self.enforce else ():
            terminalreporter.write_line("BUDGET EXCEEDED: " + overrun.line(), red=True, bold=True)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.enforce and overruns(self.seconds, self.budgets) and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
