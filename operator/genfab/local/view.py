"""Live progress of a local run: one bar per stage with samples/s and ETA (plain lines off a TTY)."""

from __future__ import annotations

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

from genfab.local.runner import StageRun


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
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
            self.tasks[name] = self.progress.add_task(name, total=run.samples, note="")
            if not self.console.is_terminal:
                self.console.print(f"stage {name}: {run.samples} samples in {len(run.shards)} shard(s)")
            return
        task = self.tasks.get(name)
        failed = f"[red]{run.failed} failed[/]" if run.failed else ""
        reused = f"{run.reused} reused" if run.reused else ""
        note = " ".join(x for x in (reused, failed) if x)
        if task is not None:
            self.progress.update(task, completed=run.succeeded + run.failed, note=note)
        if event == "end" and not self.console.is_terminal:
            tail = f" ({run.message})" if run.message else ""
            self.console.print(f"stage {name}: {run.succeeded}/{run.samples} succeeded, {run.failed} failed, "
                               f"{run.reused} reused{tail}")
