"""What a finished local run tells its user about failures: drops by reason with a few sample ids,
why the job stopped, and what keeps the good samples going. Pure: summary dict -> lines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STOPPED_PHASES = ("Failed",)


def drop_lines(summary: Mapping[str, Any]) -> list[str]:
    """One line per stage with dropped samples: `segment: 3 dropped: Unreadable 2 (a, b), Grayscale 1 (c)`."""
    lines = []
    for stage in summary["stages"]:
        dropped = stage.get("dropped") or {}
        if not dropped:
            continue
        parts = []
        for reason, info in sorted(dropped.items(), key=lambda kv: (-kv[1]["count"], kv[0])):
            more = ", ..." if info["count"] > len(info["examples"]) else ""
            parts.append(f"{reason} {info['count']} ({', '.join(info['examples'])}{more})")
        total = sum(info["count"] for info in dropped.values())
        lines.append(f"{stage['name']}: {total} dropped: {', '.join(parts)}")
    return lines


def stopped_by_drops(summary: Mapping[str, Any]) -> str | None:
    """The first stage that failed because it dropped samples, when `continueOnError` is off."""
    if summary.get("continueOnError"):
        return None
    for stage in summary["stages"]:
        if stage["phase"] in STOPPED_PHASES and stage.get("dropped") and stage["succeeded"] > 0:
            return str(stage["name"])
    return None


def failure_line(summary: Mapping[str, Any]) -> str | None:
    """The one line for stderr when the run did not succeed (None when it did)."""
    if summary["phase"] in ("Succeeded", "PartiallySucceeded"):
        return None
    stopped = stopped_by_drops(summary)
    if stopped is not None:
        stage = next(s for s in summary["stages"] if s["name"] == stopped)
        dropped = sum(info["count"] for info in stage["dropped"].values())
        return (f"{summary['kind']}/{summary['name']} {summary['phase']}: stage {stopped} dropped {dropped} of "
                f"{stage['samples']} samples (see above), so the stages after it did not run; set "
                f"`continueOnError: true` to keep the {stage['succeeded']} good ones going")
    failed = next((s for s in summary["stages"] if s["phase"] == "Failed"), None)
    why = f"stage {failed['name']}: {failed['message']}" if failed and failed.get("message") else "see the table"
    return f"{summary['kind']}/{summary['name']} {summary['phase']}: {why}"
