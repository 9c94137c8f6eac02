"""`genfab`: validate resources, show their plans, generate CRDs."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genfab.api import Resource
from genfab.api.argocd import render_argocd
from genfab.api.crd import render_crds
from genfab.api.pipeline import pipelines
from genfab.api.reasons import troubleshooting_page
from genfab.api.reference import render_reference
from genfab.api.stage_docs import stage_docs
from genfab.cli.console import GenfabConsole
from genfab.cli.estimate import calibration_page, estimate_lines, estimate_table
from genfab.cli.follow import logs_cmd, status_cmd
from genfab.cli.loading import load_file, load_one, report_errors
from genfab.cli.mask import mask_cmd
from genfab.cli.notes import notes
from genfab.cli.reference import cli_page
from genfab.cli.report import report_cmd
from genfab.cli.review import review_cmd
from genfab.cli.run import run_cmd
from genfab.cli.select import select_cmd
from genfab.cli.terminal import echo
from genfab.local.input_listing import list_resource_input
from genfab.local.interrupts import EXIT_BROKEN_PIPE, quiet_stdout
from genfab.local.models import local_fit_refusal, local_model_identities
from genfab.local.storage_env import secrets_dir
from genfab.planner import INPUT, Plan, PlannedStage, plan
from genfab.planner.calibration import DEFAULT_GPU, GPU_KINDS
from genfab.planner.estimate import EstimateError, estimate
from genfab.planner.hashing import changed_parts
from genfab.sequencing import CannotRun

PATH = click.Path(path_type=Path, dir_okay=False)


class Genfab(click.Group):
    """The command group; output piped into a reader that stops early (`genfab validate … | head -1`)
    ends the command quietly with the shell's code for it, not click's exit 1."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        with reader_gone_exits():  # `genfab --help | head -1`
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> object:
        with reader_gone_exits():
            return super().invoke(ctx)


@contextlib.contextmanager
def reader_gone_exits() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        quiet_stdout()
        sys.exit(EXIT_BROKEN_PIPE)


@click.group(cls=Genfab, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genfab")
def cli() -> None:
    """genfab: Kubernetes-native batch operator for generative 3D-scene and synthetic-dataset
    GPU pipelines (SceneJob, DatasetJob, TuningRun)."""


@cli.command()
@click.argument("files", nargs=-1, required=True, type=PATH)
def validate(files: tuple[Path, ...]) -> None:
    """Validate resource files (every document; `-` reads stdin): print each error on one line as
    `file: field.path: what is wrong (got value)` with what is allowed (and the field meant, for a
    misspelt one). The input is listed (a file:// folder; an s3:// one with credentials here) and
    its sample count said; a missing or empty input is an error. Where this machine can read
    spec.models, models that do not fit each other (a multi-camera LoRA on an edit model it was not
    trained on) are an error too. Exit 1 on any error.

    The rules are the ones the CRD makes the API server enforce. A valid resource whose pipeline still
    needs custom stages gets a one-line `note:` naming them, and one `note:` per default it leaves unset
    that runs other than the lab's script (vistadream's depth backend, worldexplorer's expansion method
    and geometry without their research images)."""
    failed = 0
    for path in files:
        for loaded in load_file(path):
            if loaded.errors:
                failed += 1
                report_errors(loaded)
            else:
                assert loaded.resource is not None
                planned = plan(loaded.resource)
                listing = list_resource_input(loaded.resource, planned, os.environ, secrets_dir(None, os.environ))
                if listing.problem:  # one verdict a document: refused, never "is valid" after it
                    failed += 1
                    echo(f"{loaded.source}: {listing.problem}", err=True)
                    continue
                misfit = local_fit_refusal(planned, loaded.resource.spec.models, os.environ)
                if misfit:  # the models in spec.models, where this machine can read them
                    failed += 1
                    echo(f"{loaded.source}: {misfit}", err=True)
                    continue
                counted = f" (input: {listing.samples} sample(s))" if listing.samples is not None else ""
                echo(f"{loaded.source}: {loaded.resource.kind}/{loaded.resource.metadata.name} is valid{counted}")
                for line in ([listing.note] if listing.note else []) + notes(loaded.resource, planned):
                    echo(f"  {line}")
    if failed:
        sys.exit(1)


def stage_verdicts(p: Plan, since: Plan | None) -> dict[str, str]:
    """What each stage does with its committed samples: `Skipped` (not selected: its committed outputs
    are reused; the word `genfab run` and the status use), or `run` and, compared with the plan of
    `since`, whether its samples are made again and why (config, upstream, model, forced) or reused
    (same hash)."""
    before = {s.name: s for s in since.stages} if since is not None else {}
    verdicts: dict[str, str] = {}
    for s in p.stages:
        old = before.get(s.name)
        if since is None:
            why = "forced" if s.rerun else ""
        elif old is not None and (old.config_hash == s.config_hash or (not s.rerun and old.base_hash == s.base_hash)):
            why = "same hash: reused"
        else:
            why = "again: " + ", ".join(changed_parts(old.hash_parts if old is not None else None, s.hash_parts))
        head = "run" if s.run else "Skipped"
        verdicts[s.name] = f"{head} ({why})" if why and (s.run or since is not None) else head
    return verdicts


def _plan_table(p: Plan, since: Plan | None = None, parallelism: int | None = None) -> Table:
    # A URI may hold `[` and `]` (S3 keys can): printed as written, never read as rich markup.
    table = Table(title=escape(f"{p.kind}/{p.name} ({p.pipeline}) -> {p.output_uri}"), title_justify="left")
    for column in ("#", "stage", "after", "family", "run", "samples", "shards", "pods", "gpus", "memory", "hash",
                   "output"):
        table.add_column(column, overflow="fold")
    verdicts = stage_verdicts(p, since)
    for i, s in enumerate(p.stages, start=1):
        table.add_row(
            str(i), s.name, (",".join(s.upstream) or "-") + (" (streams)" if s.streams_from else ""), s.family,
            verdicts[s.name],
            "?" if s.samples is None else str(s.samples), "?" if s.shards is None else str(s.shards),
            _pods(s, parallelism), str(s.resources.gpus), s.resources.memory, s.short_hash,
            escape(s.output_layout or s.output_uri),
        )
    return table


def shared_worker_lines(p: Plan) -> list[str]:
    """One line per group of stages that share a warm worker (`PlannedStage.shares_worker`)."""
    declared = {d.stages: d for d in pipelines()[p.pipeline].shared_workers} if p.pipeline in pipelines() else {}
    groups = list(dict.fromkeys(s.shares_worker for s in p.stages if s.shares_worker))
    lines = []
    for group in groups:
        what = next((d.models for members, d in declared.items() if set(group) <= set(members)), "their models")
        lines.append(f"shared worker: {', '.join(group)} run in one warm worker that loads {what} once "
                     f"(`genfab run`; a cluster in {group[0]}'s worker Job)")
    return lines


def _pods(stage: PlannedStage, parallelism: int | None) -> str:
    """The stage's Pods in a cluster: one per shard, or `N warm` workers taking shard after shard."""
    if stage.shards is None:
        return "?"
    pods = stage.workers(stage.shards, parallelism)
    return f"{pods} warm" if pods < stage.shards else str(pods)


def _planned(loaded_resource: Resource, inventory: dict[str, int] | None) -> tuple[Plan, str | None]:
    """The plan with the model identities this machine can read (a one-line note when it cannot)."""
    first = plan(loaded_resource, inventory)
    try:
        identities = local_model_identities(first, loaded_resource.spec.models, os.environ)
    except CannotRun as exc:
        return first, f"models not read ({exc}): their hashes show them as unread"
    return (plan(loaded_resource, inventory, models=identities) if identities else first), None


@cli.command("plan")
@click.argument("file", type=PATH)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON instead of a table.")
@click.option("--input-samples", type=click.IntRange(min=0), default=None,
              help="Number of input samples, for inputs only a listing can count (manifest, folder).")
@click.option("--since", "since", type=PATH, default=None,
              help="The resource as it was (e.g. the file at the last commit): say per stage whether its "
                   "committed samples are made again, and why (config, upstream, model, forced).")
@click.option("--estimate", "with_estimate", is_flag=True,
              help="Add what it costs: GPU-hours and wall time per stage and in total, on the resource's "
                   "parallelism, from the measured calibration table.")
@click.option("--gpu", default=DEFAULT_GPU, show_default=True,
              help=f"GPU kind of the estimate ({', '.join(GPU_KINDS)}).")
def plan_cmd(file: Path, as_json: bool, input_samples: int | None, since: Path | None, with_estimate: bool,
             gpu: str) -> None:
    """Print the stage DAG of the resource in FILE (one document; `-` reads stdin): order, upstream,
    image family (`(streams)`: it starts on its upstream's shards as they finish, locally and in a cluster), whether
    each stage runs or reuses its outputs, samples, shards, Pods (`N warm`: that
    many warm workers take the shards one after another, at `parallelism` below the shards), GPUs, memory,
    config hash and output layout; then which stages share one warm worker (`shared worker: ...`: stages
    that load the same models, run in one process by `genfab run`).

    With --since (the resource as it was, e.g. the file at the last commit) it says per stage whether
    its committed samples are reused (same hash) or made again and why: `config`, `upstream`, `model`
    or `forced`. The identities of the models in spec.models are read where this machine can
    (credentials as for `genfab run`). Counts only a listing can know (a manifest, an input folder)
    are listed as `run` lists them (a file:// folder; an s3:// one with credentials here), unless
    --input-samples is given; a missing or empty input exits 1 with one line. Counts only an upstream
    stage can know show `?`. The same notes as `validate` (on stderr with --json)."""
    loaded = load_one(file)
    if loaded.errors or loaded.resource is None:
        report_errors(loaded)
        sys.exit(1)
    inventory = {INPUT: input_samples} if input_samples is not None else None
    result, models_note = _planned(loaded.resource, inventory)
    listing = None
    if inventory is None:  # counted by listing it, as the run will (a missing or empty input said now)
        listing = list_resource_input(loaded.resource, result, os.environ, secrets_dir(None, os.environ))
        if listing.problem:
            echo(f"genfab plan: {listing.problem}", err=True)
            sys.exit(1)
        if listing.samples is not None:
            inventory = {INPUT: listing.samples}
            result, models_note = _planned(loaded.resource, inventory)
    misfit = local_fit_refusal(result, loaded.resource.spec.models, os.environ)
    if misfit:
        echo(f"genfab plan: {misfit}", err=True)
        sys.exit(1)
    cost = None
    if with_estimate:
        try:
            cost = estimate(result, gpu, loaded.resource.spec.parallelism)
        except EstimateError as exc:
            echo(f"genfab plan: {exc}", err=True)
            sys.exit(1)
    before = None
    if since is not None:
        old = load_one(since)
        if old.errors or old.resource is None:
            report_errors(old)
            sys.exit(1)
        before, _ = _planned(old.resource, inventory)
    if as_json:
        doc = result.to_dict()
        if before is not None:  # per stage: reused, or made again and why
            doc["since"] = stage_verdicts(result, before)
        if cost is not None:
            doc["estimate"] = cost.to_dict()
        echo(json.dumps(doc, indent=2))
        for line in notes(loaded.resource, result):
            echo(line, err=True)  # stdout stays JSON
        return
    console = GenfabConsole(width=max(Console().width, 140))
    console.print(_plan_table(result, before, loaded.resource.spec.parallelism))
    if models_note:
        console.print(models_note, highlight=False, markup=False)
    for line in shared_worker_lines(result):
        console.print(line, highlight=False, markup=False)
    if any(not s.run for s in result.stages):
        console.print("Skipped: not selected (onlyStages, --only): its committed outputs are reused, as `genfab run` "
                      "and the status say", highlight=False, markup=False)
    if listing is not None and listing.note:
        console.print(listing.note, highlight=False, markup=False)
    if any(s.samples is None for s in result.stages):
        console.print("samples '?': counted when the stage starts (its samples come from an upstream stage or an "
                      "input not listed here; pass --input-samples N to preview)")
    for ref in result.external_refs:
        console.print(f"waits for {ref}", markup=False)
    if cost is not None:
        console.print(estimate_table(cost))
        for line in estimate_lines(cost):
            console.print(line, highlight=False, markup=False)
    for line in notes(loaded.resource, result):
        echo(line)


CRD_DIRS = (Path("crds"), Path("charts/genfab/crds"))
COST_PAGE = Path("benchmarks/results/cost.md")
"""The calibration table and what each GPU example costs by it (the benchmarks page's first section)."""


def _write_or_check(files: dict[Path, str], check: bool, regenerate: str) -> None:
    """Write generated files, or with `check` compare them and exit 1 (with a diff) when stale."""
    stale = 0
    for path, text in files.items():
        if check:
            current = path.read_text() if path.exists() else ""
            if current != text:
                stale += 1
                echo(f"stale: {path} (regenerate with `{regenerate}`)", err=True)
                diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(path), "generated",
                                            lineterm="", n=1)
                echo("\n".join(list(diff)[:40]), err=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        echo(f"wrote {path}")
    if stale:
        sys.exit(1)
    if check:
        echo(f"{len(files)} generated files are up to date")


@cli.command()
@click.option("--out", "outs", type=click.Path(path_type=Path, file_okay=False), multiple=True,
              help="Directory to write one CRD file per kind into (repeatable). "
                   "Default: crds/ and the Helm chart's copy, charts/genfab/crds/.")
@click.option("--check", is_flag=True, help="Do not write; exit 1 if the files in --out are stale.")
def crds(outs: tuple[Path, ...], check: bool) -> None:
    """Generate the CustomResourceDefinitions from the API models: one file per kind into crds/ and
    the Helm chart's copy, charts/genfab/crds/. With --check, exit 1 when any file is stale (CI)."""
    rendered = render_crds()
    _write_or_check({out / name: text for out in outs or CRD_DIRS for name, text in rendered.items()}, check,
                    "genfab crds")


@cli.command()
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("deploy/argocd"),
              show_default=True, help="Directory for the health scripts and the argocd-cm snippet.")
@click.option("--check", is_flag=True, help="Do not write; exit 1 if the files in --out are stale.")
def argocd(out: Path, check: bool) -> None:
    """Generate the Argo CD health checks (resource_customizations/genfab.dev/<Kind>/health.lua) and
    the argocd-cm snippet into deploy/argocd/. With --check, exit 1 when stale (CI)."""
    _write_or_check({out / rel: text for rel, text in render_argocd().items()}, check, "genfab argocd")


@cli.command()
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("docs/reference"),
              show_default=True, help="Directory for the reference pages.")
@click.option("--stages-out", type=click.Path(path_type=Path, file_okay=False),
              default=Path("docs/pipelines/stages"), show_default=True,
              help="Directory for each pipeline's stage table and stage graph (included by the pipeline pages).")
@click.option("--check", is_flag=True, help="Do not write; exit 1 if the pages in --out are stale.")
def docs(out: Path, stages_out: Path, check: bool) -> None:
    """Generate the reference pages: every field of every kind (from the API models), every command,
    every status reason (the troubleshooting page) and every metric, into docs/reference/; and each
    pipeline's stage table, stage picture and model list into docs/pipelines/stages/. With --check,
    exit 1 when any is stale (CI)."""
    pages = {out / name: text for name, text in render_reference().items()}
    from genfab.operator.main import operator  # the operator's own options (the `operator` extra)

    pages[out / "cli.md"] = cli_page(cli, delegates={"operator": operator})
    pages[out / "reasons.md"] = troubleshooting_page()
    from genfab.cli.metrics_reference import metrics_page  # prometheus-client only when asked

    pages[out / "metrics.md"] = metrics_page()
    pages[COST_PAGE] = calibration_page()
    pages.update({stages_out / name: text for name, text in stage_docs().items()})
    _write_or_check(pages, check, "genfab docs")


cli.add_command(run_cmd)
cli.add_command(select_cmd)
cli.add_command(status_cmd)
cli.add_command(logs_cmd)
cli.add_command(report_cmd)
cli.add_command(review_cmd)
cli.add_command(mask_cmd)


@cli.command("operator", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                           "help_option_names": []})
@click.pass_context
def operator_cmd(ctx: click.Context) -> None:
    """Run the Kubernetes operator (`genfab operator --help`; needs the `operator` extra)."""
    from genfab.operator.main import operator  # its own options, and the one line without the extra

    operator.main(args=ctx.args, prog_name="genfab operator")

if __name__ == "__main__":
    cli()
