"""Live progress of a local run: one bar per stage with samples/s and ETA (plain lines off a TTY)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from genfab.local.stage_runs import StageRun


class RateColumn(ProgressColumn):
    """Samples made per second of the stage (`StageRun.samples_per_second`, as the summary table has
    it), not rich's estimate over recent updates: a burst of reused samples is no speed."""

    def render(self, task: Task) -> Text:
        speed = task.fields.get("rate")
        return Text(f"{speed:.2f} samples/s" if speed else "– samples/s", style="progress.data.speed")


class ProgressView:
    """A `LocalRunner` listener."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description:<18}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[note]}"), console=console,
            disable=not console.is_terminal, transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: str, run: StageRun) -> None:
        name = run.stage.name
        if event == "start":
            self.tasks[name] = self.progress.add_task(name, total=run.samples, note="", rate=None)
            if not self.console.is_terminal:
                what = (f"takes {run.stage.streams_from[0]}'s {len(run.shards)} shard(s) as they finish"
                        if run.stage.streams_from else f"{run.samples} samples in {len(run.shards)} shard(s)")
                self.console.print(f"stage {name}: {what}", highlight=False, markup=False, soft_wrap=True)
            return
        task = self.tasks.get(name)
        failed = f"[red]{run.failed} failed[/]" if run.failed else ""
        reused = f"{run.reused} reused" if run.reused else ""
        note = " ".join(x for x in (reused, failed) if x)
        if task is not None:
            # a stage streaming from its upstream learns its samples as the upstream's shards finish
            self.progress.update(task, total=run.samples, completed=run.succeeded + run.failed, note=note,
                                 rate=run.samples_per_second(time.monotonic()))
        if event == "end" and not self.console.is_terminal:
            tail = f" ({run.status_message})" if run.status_message else ""
            self.console.print(f"stage {name}: {run.succeeded}/{run.samples} succeeded, {run.failed} failed, "
                               f"{run.reused} reused{tail}", highlight=False, markup=False, soft_wrap=True)
