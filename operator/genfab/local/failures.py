"""What a finished local run tells its user about failures: drops by reason with a few sample ids,
why the job stopped, and what keeps the good samples going. Pure: summary -> lines."""

from __future__ import annotations

from genfab.api.summary import RunSummary

STOPPED_PHASES = ("Failed",)


def drop_lines(summary: RunSummary) -> list[str]:
    """One line per stage with dropped samples: `segment: 3 dropped: Unreadable 2 (a, b), Grayscale 1 (c)`."""
    lines = []
    for stage in summary.stages:
        if not stage.dropped:
            continue
        parts = []
        for reason, info in sorted(stage.dropped.items(), key=lambda kv: (-kv[1].count, kv[0])):
            more = ", ..." if info.count > len(info.examples) else ""
            parts.append(f"{reason} {info.count} ({', '.join(info.examples)}{more})")
        total = sum(info.count for info in stage.dropped.values())
        lines.append(f"{stage.name}: {total} dropped: {', '.join(parts)}")
    return lines


def yield_line(summary: RunSummary) -> str | None:
    """A DatasetJob's yield once its last stage ran: how many of the inputs its first stage took became
    samples of its last (`yield: 15 of 16 inputs made it through every stage (94 %)`)."""
    if summary.kind != "DatasetJob" or not summary.stages:
        return None
    first, last = summary.stages[0], summary.stages[-1]
    if not first.samples or last.phase not in ("Succeeded", "PartiallySucceeded"):
        return None
    made = last.succeeded or 0  # reused samples are among the succeeded
    return (f"yield: {made} of {first.samples} inputs made it through every stage "
            f"({100.0 * made / first.samples:.0f} %)")


def stopped_by_drops(summary: RunSummary) -> str | None:
    """The first stage that failed because it dropped samples, when `continueOnError` is off."""
    if summary.continue_on_error:
        return None
    for stage in summary.stages:
        if stage.phase in STOPPED_PHASES and stage.dropped and (stage.succeeded or 0) > 0:
            return stage.name
    return None


def failure_line(summary: RunSummary) -> str | None:
    """The one line for stderr when the run did not succeed (None when it did)."""
    if summary.phase in ("Succeeded", "PartiallySucceeded"):
        return None
    run = f"{summary.kind}/{summary.name} {summary.phase}"
    stopped = stopped_by_drops(summary)
    if stopped is not None:
        stage = next(s for s in summary.stages if s.name == stopped)
        dropped = sum(info.count for info in stage.dropped.values())
        return (f"{run}: stage {stopped} dropped {dropped} of {stage.samples} samples (see above), so the stages "
                f"after it did not run; set `continueOnError: true` to keep the {stage.succeeded} good ones going")
    failed = next((s for s in summary.stages if s.phase == "Failed"), None)
    why = f"stage {failed.name}: {failed.message}" if failed and failed.message else "see the table"
    return f"{run}: {why}"
