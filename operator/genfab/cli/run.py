"""`genfab run`: execute a resource's plan on this machine (the embedded default, no cluster)."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Group
from rich.table import Table
from rich.text import Text

from genfab.api import Resource, parse_resource
from genfab.api.errors import field_errors
from genfab.api.summary import RunSummary
from genfab.cli.console import GenfabConsole
from genfab.cli.follow import log_dir
from genfab.cli.loading import load_one, out_option_error, report_errors
from genfab.cli.notes import seed_notes
from genfab.cli.report import write_run_report
from genfab.cli.terminal import echo, fail
from genfab.contract import STATUS_KEY
from genfab.local import LocalRunner, RunResult, resolve_output
from genfab.local.devices import cuda_visible
from genfab.local.execution import keep_execution, local_execution
from genfab.local.failures import drop_lines, failure_line, yield_line
from genfab.local.input_listing import list_input
from genfab.local.interrupts import interruption, quiet_stdout, signals_interrupt
from genfab.local.models import local_fit_refusal, local_model_identities
from genfab.local.ownership import TAKEN_OVER_DIR, Owner, foreign_record, take_over
from genfab.local.refs import parse_ref_options, resolve_checkpoints
from genfab.local.runner import RunnerError
from genfab.local.storage_env import DEFAULT_SECRETS_DIR, ENV_SECRETS_DIR, local_environment, secrets_dir
from genfab.local.view import ProgressView
from genfab.planner import Plan, plan
from genfab.sequencing import CannotRun
from genfab.sequencing.execution import execution_choice
from genfab.storage import S3Settings, StorageError, open_storage


def _override(resource: Resource, out: str, only: list[str] | None, rerun: list[str] | None = None) -> Resource:
    data: dict[str, Any] = resource.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"status"})
    data["spec"]["output"] = out
    if only is not None:
        data["spec"]["onlyStages"] = only
    if rerun is not None:  # a token no earlier run used: the stages are made again, once
        names = rerun if rerun != ["all"] else list(plan(resource).stage_names)
        data["spec"]["rerun"] = {"token": f"local-{time.time_ns()}", "stages": names}
    try:
        return parse_resource(data)
    except ValidationError as exc:
        for error in field_errors(exc):
            echo(f"genfab run: {error}", err=True)
        sys.exit(2)


def next_command(the_plan: Plan, gated: str, again: str, cuda: bool) -> str:
    """After a person chooses at stage `gated`'s gate: the exact command that goes on, on this machine.
    The stages after the gate run when selected and, where they need a CUDA GPU, only on a machine
    that has one; here a plain re-run records the choices (and says the rest needs a GPU)."""
    later = [n for n in the_plan.downstream(gated) if not the_plan.stage(n).run]
    gpu = [n for n in the_plan.downstream(gated) if the_plan.stage(n).cuda]
    if not later:
        if gpu and not cuda:
            return (f"then run `genfab run {again}` again on a machine with a CUDA GPU ({', '.join(gpu)} need one; "
                    "this one would refuse them)")
        return f"then run `genfab run {again}` again"
    if any(n in later for n in gpu) and not cuda:
        return (f"then run `genfab run {again}` again here; {', '.join(later)} (not selected) need a CUDA GPU: on a "
                f"machine with one, `genfab run {again} --only {','.join(later)}`")
    return f"then run `genfab run {again} --only {','.join(later)}` to go on"


def custom_lines(summary: RunSummary) -> list[str]:
    """One line per stage a custom stage made, and what ran (a stand-in is never reported as genfab's)."""
    lines = []
    for s in summary.stages:
        if s.custom:
            role = "in place of genfab's own stage" if s.custom["replaces"] else "added by the spec"
            ran = shlex.join(s.custom["command"]) or f"image {s.custom['image']}"
            lines.append(f"{s.name}: made by a custom stage, {role}: {ran}")
    return lines


SUMMARY_COLUMNS = ("stage", "phase", "samples", "succeeded", "reused", "failed", "seconds", "samples/s")


def _summary_table(result: RunResult, width: int) -> Table | Group:
    """The run's stages as a table, or, where the table would not fit in `width` columns (rich would
    cut names and phases: "Succee…"), one line per stage."""
    title = f"{result.summary.kind}/{result.summary.name}: {result.status.phase}"
    rows = [[s.name + (" (custom)" if s.custom else ""), str(s.phase), str(s.samples), str(s.succeeded),
             str(s.reused), str(s.failed), "-" if s.seconds is None else f"{s.seconds:.1f}",
             "-" if not s.samples_per_second else f"{s.samples_per_second:.2f}"] for s in result.summary.stages]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(SUMMARY_COLUMNS)]
    if sum(widths) + 3 * len(widths) + 1 > width:
        name_width, phase_width = widths[0], widths[1]
        return Group(Text(title), *(Text(
            f"{r[0]:<{name_width}}  {r[1]:<{phase_width}}  {r[3]}/{r[2]} succeeded, {r[4]} reused, {r[5]} failed, "
            f"{r[6]} s, {r[7]}/s") for r in rows))
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(SUMMARY_COLUMNS):
        table.add_column(column, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*row)
    return table


@click.command("run")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", "out", metavar="URI", default=None,
              help="Write here instead of the spec's output (s3://bucket/prefix or file://dir).")
@click.option("--only", "only", metavar="STAGES", default=None,
              help="Comma-separated stages to run; the others reuse their committed outputs.")
@click.option("--rerun", "rerun", metavar="STAGES|all", default=None,
              help="Make these stages' committed samples again (comma-separated, or all), and what consumes "
                   "them; like a new spec.rerun.token. Without it a committed sample with the same config hash is "
                   "reused.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Shard processes at once (default: CPU count).")
@click.option("--resume", is_flag=True,
              help="Continue an earlier run at the same output (fails if there is none). Committed samples "
                   "with the same config hash are never redone, with or without this flag.")
@click.option("--secrets", "secrets", metavar="DIR", default=None,
              help=f"Where spec.storage.secretRef NAME is looked up: DIR/NAME/ (one file per key) or "
                   f"DIR/NAME.env (default: ${ENV_SECRETS_DIR} or {DEFAULT_SECRETS_DIR}).")
@click.option("--ref", "refs", metavar="KIND/NAME=URI", multiple=True,
              help="Output of a referenced resource (e.g. DatasetJob/my-data=file://./genfab-runs/my-data); "
                   "default: that resource's finished local run.")
@click.option("--verify", is_flag=True,
              help="Re-hash committed outputs (sha256) before reusing them; without it reuse checks that each "
                   "output exists with its committed size. Anything that fails is produced again.")
@click.option("--new-execution", "new_execution", is_flag=True,
              help="reference-object with executionMode new or last: choose the execution again (a new "
                   "timestamped folder; the newest one) instead of continuing the one this resource's first run "
                   "chose.")
@click.option("--force", is_flag=True,
              help="Write into an output whose record (status.json) belongs to another resource: its record is "
                   f"kept in {TAKEN_OVER_DIR}/ and replaced by this run's.")
def run_cmd(file: Path, out: str | None, only: str | None, rerun: str | None, workers: int | None, resume: bool,
            secrets: str | None, refs: tuple[str, ...], verify: bool, new_execution: bool, force: bool) -> None:
    """Run the resource in FILE (one document; `-` reads stdin) on this machine: same plan, same stage contract as
    the operator, each stage in warm worker processes that load its models once and run shard after shard.
    Status goes to {output}/_genfab/status.json.

    Exit 0 when it Succeeded or PartiallySucceeded; 1 when the spec is invalid, the input is missing
    or empty (said before anything is written) or the run Failed; 2 when this machine cannot run it,
    said before anything starts (the output cannot be written, another run holds it or its record is
    another resource's (--force takes it over), a stage has no implementation here, needs a CUDA GPU
    or a model that is not in the model location or no model location, an s3:// input and no S3
    credentials here, a reference cannot be resolved), or at a stage past a manual gate that needs a
    CUDA GPU; 3 when it stopped at a person's step, phase AwaitingSelection (worldexplorer's manual
    selection: choose, then run it again as the last line says); when stopped early,
    the shell's code for what stopped it (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP, 141 stdout closed, as
    by `| head`) after stopping every shard and writing the status: run it again to continue."""
    problem = out_option_error(out)
    if problem:
        fail("run", problem)
    loaded = load_one(file)
    if loaded.errors or loaded.resource is None:
        report_errors(loaded)
        sys.exit(1)
    resource = loaded.resource
    console = GenfabConsole()
    if not console.is_terminal:
        console = GenfabConsole(width=120)  # logs and CI: wide enough for the summary table
    try:
        environ, credentials_note = local_environment(resource.spec.storage, os.environ,
                                                      secrets_dir(secrets, os.environ))
        given_refs = parse_ref_options(refs)
    except CannotRun as exc:
        fail("run", str(exc))
    target, note = resolve_output(resource.spec.output, out, resource.metadata.name, environ)
    # Said once the run is known to start: a refusal below is the only line a refused run prints.
    notes = [line for line in (credentials_note, note) if line]
    only_list = [s.strip() for s in only.split(",") if s.strip()] if only is not None else None
    rerun_list = [s.strip() for s in rerun.split(",") if s.strip()] if rerun is not None else None
    resource = _override(resource, target, only_list, rerun_list)
    try:
        settings = S3Settings.from_env(environ)
        output = open_storage(resource.spec.output, settings)
        chosen = local_execution(resource, output, again=new_execution)
        the_plan = plan(resource, execution=chosen.name)
        checkpoints = resolve_checkpoints(the_plan, given_refs, lambda uri: open_storage(uri, settings))
    except (CannotRun, StorageError) as exc:
        fail("run", str(exc))
    notes += [f"note: {line}" for line in seed_notes(loaded.resource)]  # defaults other than the lab's script
    try:  # the weights in the model location are part of the hashes
        identities = local_model_identities(the_plan, resource.spec.models, environ)
    except CannotRun as exc:
        fail("run", str(exc))
    if checkpoints or identities:  # the checkpoint is part of the plan's settings (and hashes)
        the_plan = plan(resource, references=checkpoints, models=identities, execution=chosen.name)
    misfit = local_fit_refusal(the_plan, resource.spec.models, environ)
    if misfit:  # before any stage starts: no sample is made for a run whose models cannot finish it
        fail("run", misfit)
    listing = list_input(the_plan, lambda uri: open_storage(uri, settings), environ)
    if listing.problem:  # said before anything is written: the output stays as it was
        echo(f"genfab run: {listing.problem}", err=True)
        sys.exit(1)
    if listing.note:  # an input in S3 and no credentials here: a cluster's job, refused before it starts
        fail("run", listing.note)
    for line in notes:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    try:
        run_store = open_storage(the_plan.output_uri, S3Settings.from_env(environ))
        previous = run_store.exists(STATUS_KEY)
        foreign = foreign_record(run_store, Owner(the_plan.kind, the_plan.name), the_plan.output_uri)
    except StorageError as exc:
        fail("run", f"{exc} ({credentials_note})" if credentials_note else str(exc))
    if resume and not previous:
        fail("run", f"--resume: no earlier run at {the_plan.output_uri} (no {STATUS_KEY})")
    # reference-object's executionMode last continues the newest execution whoever made it: the
    # settings ask for it, so the other resource's record is kept beside this run's, as with --force.
    if foreign is not None and not force and execution_choice(resource) != "last":
        fail("run", foreign[0])
    # How the advice names this run again: the file, and the output where --out chose it.
    again = shlex.quote(str(file)) + (f" --out {shlex.quote(the_plan.output_uri)}" if out else "")
    try:
        view = ProgressView(console)
        runner = LocalRunner(resource, the_plan, workers=workers or os.cpu_count() or 1,
                             log_dir=log_dir(the_plan.output_uri, the_plan.name), listener=view,
                             environ=environ, refs=given_refs, verify=verify, resource_file=again)
        runner.claim()  # refused (another run holds the output) before saying anything else
        if foreign is not None:  # --force: the other resource's record is kept beside this run's
            console.print(take_over(run_store, foreign[1]), highlight=False, markup=False, soft_wrap=True)
            previous = False
        keep_execution(output, chosen)  # the next run of this resource continues this execution
        if chosen.note:  # said once it is kept: a refused run keeps nothing
            console.print(chosen.note, highlight=False, markup=False, soft_wrap=True)
        if previous:
            console.print(f"continuing the run at {the_plan.output_uri}: committed samples are reused",
                          highlight=False, markup=False, soft_wrap=True)
        with signals_interrupt(), view:
            result = runner.run()
    except RunnerError as exc:
        fail("run", str(exc))
    except StorageError as exc:  # the output cannot be written (a file, no permission, disk full)
        fail("run", f"output {the_plan.output_uri}: {exc}")
    except (KeyboardInterrupt, BrokenPipeError) as exc:  # the runner stopped every shard and wrote the status
        stop = interruption(exc)
        if stop.broken_pipe:
            quiet_stdout()
        echo(f"genfab run: interrupted by {stop.why}; run the same command again to continue "
                   f"({the_plan.output_uri})", err=True)
        sys.exit(stop.exit_code)
    for line in [*runner.notes, *runner.more_notes()]:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(_summary_table(result, console.width))
    for line in custom_lines(result.summary):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    summary = result.summary
    ran = [st for st in summary.stages if st.succeeded]
    last = f" (the last stage's, {ran[-1].name}: {ran[-1].output_uri})" if ran else ""
    console.print(f"data:    {summary.output_uri}{last}\nstatus:  {summary.status_uri} "
                  f"(`genfab status {summary.output_uri}`)\nsummary: {summary.summary_uri}",
                  highlight=False, markup=False, soft_wrap=True)
    where, what = write_run_report(str(summary.output_uri), environ)
    console.print(f"report:  {where} ({what})" if where else f"report:  not written: {what}",
                  highlight=False, markup=False, soft_wrap=True)
    redone = {s.name: s.redone for s in summary.stages if s.redone}
    if redone:
        console.print("reuse check: " + ", ".join(f"{n} sample(s) of {stage}" for stage, n in redone.items())
                      + " had missing or changed outputs and were produced again (shard logs say which)",
                      highlight=False, markup=False, soft_wrap=True)
    made = yield_line(summary)
    if made:
        console.print(made, highlight=False, markup=False, soft_wrap=True)
    if summary.dropped:
        console.print(f"dropped: {summary.dropped} sample(s) in {summary.dropped_samples_csv}",
                      highlight=False, markup=False, soft_wrap=True)
        for line in drop_lines(result.summary):
            console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    failure = failure_line(result.summary)
    if failure and not result.awaiting:  # stopped at a gate is no failure: the lines below say what to do
        echo(f"genfab run: {failure}", err=True)
    for held in result.awaiting:  # not a failure: a person chooses, then runs the same command again
        then = next_command(the_plan, held.stage, again, cuda_visible(environ))
        console.print(f"{held.condition}: {held.message}; {then}", highlight=False, markup=False, soft_wrap=True)
    sys.exit(result.exit_code)
