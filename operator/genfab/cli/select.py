"""`genfab select`: a person's choice at worldexplorer's manual selection gate: copy one candidate of an
in-between scaffold view into the sample's `final/`, as the seed does by hand, in the resource's
output wherever it is (object storage or a local run's folder). The operator notices a complete
`final/` by itself; a local run goes on when run again."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from genfab.api import parse_resource
from genfab.api.pipelines.worldexplorer import GAP_VIEWS, candidate_key, final_key
from genfab.cli.loading import load_one, out_option_error, report_errors
from genfab.local import resolve_output
from genfab.local.storage_env import local_environment, secrets_dir
from genfab.planner import PlannedStage, plan
from genfab.sequencing import CannotRun
from genfab.sequencing.manual import missing_files, sample_folder
from genfab.storage import S3Settings, StorageError, open_storage


def _fail(message: str) -> None:
    click.echo(f"genfab select: {message}", err=True)
    sys.exit(2)


def _gated_stage(file: Path, out: str | None) -> tuple[PlannedStage, dict[str, str]]:
    """The resource's gated stage, planned at the output `genfab run` would use (or `--out`), and the
    environment of its storage clients."""
    problem = out_option_error(out)
    if problem:
        _fail(problem)
    loaded = load_one(file)
    if loaded.errors or loaded.resource is None:
        report_errors(loaded)
        sys.exit(1)
    resource = loaded.resource
    try:
        environ, _ = local_environment(resource.spec.storage, os.environ, secrets_dir(None, os.environ))
    except CannotRun as exc:
        _fail(str(exc))
    target, note = resolve_output(resource.spec.output, out, resource.metadata.name, environ)
    if note:
        click.echo(note)
    data = resource.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"status"})
    data["spec"]["output"] = target
    the_plan = plan(parse_resource(data))
    stage = next((s for s in the_plan.stages if s.manual_gate is not None), None)
    if stage is None:
        _fail(f"{file}: nothing to choose: only a worldexplorer SceneJob with worldexplorer.scaffold.selection: "
              "manual waits for a person's choice")
    assert stage is not None
    return stage, environ


@click.command("select")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--sample", "sample_id", required=True, metavar="ID",
              help="The sample, as in the AwaitingSelection condition (e.g. photorealistic/index_0003).")
@click.option("--gap", required=True, type=click.Choice(GAP_VIEWS), help="The in-between view to choose.")
@click.option("--candidate", required=True, type=click.IntRange(min=0), metavar="K",
              help="The candidate: candidates/<gap>_<K>.png of the sample's scaffold.")
@click.option("--out", "out", metavar="URI", default=None,
              help="The run's output when it is not the spec's (as given to `genfab run --out`).")
def select_cmd(file: Path, sample_id: str, gap: str, candidate: int, out: str | None) -> None:
    """worldexplorer's manual selection: copy candidate K of in-between view GAP (001, 003, 005, 007)
    into the sample's scaffold/final/, in the output of the resource in FILE (the one applied or run),
    and say which views the sample still lacks. Credentials as for `genfab run`: the environment, or
    spec.storage.secretRef's file under $GENFAB_SECRETS_DIR. A missing candidate is one line listing
    the ones there (exit 2)."""
    stage, environ = _gated_stage(file, out)
    folder = sample_folder(stage, sample_id.strip("/"))
    try:
        store = open_storage(stage.output_uri, S3Settings.from_env(environ))
        source, target = folder + candidate_key(gap, candidate), folder + final_key(gap)
        if not store.exists(source):
            have = sorted(o.key.rsplit("/", 1)[-1] for o in store.list(f"{folder}candidates/")
                          if o.key.rsplit("/", 1)[-1].startswith(f"{gap}_"))
            allowed = f"there are {', '.join(have)}" if have else "the sample has no candidates there (wrong --sample?)"
            _fail(f"{store.child(source)}: no such candidate; {allowed}")
        store.copy(source, target)
        present = [o.key[len(folder):] for o in store.list(folder)]
    except StorageError as exc:
        _fail(str(exc))
    click.echo(f"{sample_id}: {final_key(gap)} <- {candidate_key(gap, candidate)} ({store.child(target)})")
    left = missing_files(stage, present)
    click.echo(f"still to choose for {sample_id}: {', '.join(left)}" if left else
               f"{sample_id}: final/ is complete; the operator goes on by itself, a local run when run again")
