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
from genfab.api.pipelines.worldexplorer import GAP_VIEWS
from genfab.cli.loading import load_one, out_option_error, report_errors
from genfab.cli.terminal import echo, fail, malformed_is_one_line
from genfab.local import resolve_output
from genfab.local.storage_env import local_environment, secrets_dir
from genfab.planner import PlannedStage, plan
from genfab.selection.choices import Choice, ChoiceError, apply_choices, complete_count, latest
from genfab.sequencing import CannotRun
from genfab.sequencing.manual import sample_folder
from genfab.storage import S3Settings, StorageError, open_confined


def _gated_stage(file: Path, out: str | None) -> tuple[PlannedStage, dict[str, str]]:
    """The resource's gated stage, planned at the output `genfab run` would use (or `--out`), and the
    environment of its storage clients."""
    problem = out_option_error(out)
    if problem:
        fail("select", problem)
    loaded = load_one(file)
    if loaded.errors or loaded.resource is None:
        report_errors(loaded)
        sys.exit(1)
    resource = loaded.resource
    try:
        environ, _ = local_environment(resource.spec.storage, os.environ, secrets_dir(None, os.environ))
    except CannotRun as exc:
        fail("select", str(exc))
    target, note = resolve_output(resource.spec.output, out, resource.metadata.name, environ)
    if note:
        echo(note)
    data = resource.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"status"})
    data["spec"]["output"] = target
    the_plan = plan(parse_resource(data))
    stage = next((s for s in the_plan.stages if s.manual_gate is not None), None)
    if stage is None:
        fail("select", f"{file}: nothing to choose: only a worldexplorer SceneJob with "
             "worldexplorer.scaffold.selection: manual waits for a person's choice")
    assert stage is not None
    return stage, environ


def parse_choice(text: str) -> Choice:
    """`SAMPLE:GAP=K` (e.g. `photorealistic/index_0003:001=2`), or one line of a choices file:
    `SAMPLE GAP K` (spaces or commas)."""
    text = text.strip()
    if "=" in text and ":" in text:
        head, _, k = text.rpartition("=")
        sample, _, gap = head.rpartition(":")
    else:
        parts = text.replace(",", " ").split()
        sample, gap, k = (parts[0], parts[1], parts[2]) if len(parts) == 3 else ("", "", "")
    if not sample or gap not in GAP_VIEWS or not k.strip().isdigit():
        raise click.BadParameter(f"{text!r}: expected SAMPLE:GAP=K (GAP one of {', '.join(GAP_VIEWS)}, K a "
                                 "candidate number), e.g. photorealistic/index_0003:001=2")
    return sample.strip().strip("/"), gap, int(k)


def read_choices(path: Path) -> list[Choice]:
    """A choices file: one `SAMPLE GAP K` (or `SAMPLE:GAP=K`) per line; blank lines and `#` comments skipped."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        fail("select", f"--choices {path}: cannot read it ({exc.__class__.__name__})")
    out = []
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                out.append(parse_choice(line))
            except click.BadParameter as exc:
                fail("select", f"--choices {path} line {number}: {exc.message}")
    return out


@click.command("select")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--sample", "sample_id", default=None, metavar="ID",
              help="The sample, as in the AwaitingSelection condition (e.g. photorealistic/index_0003).")
@click.option("--gap", default=None, type=click.Choice(GAP_VIEWS), help="The in-between view to choose.")
@click.option("--candidate", default=None, type=click.IntRange(min=0), metavar="K",
              help="The candidate: candidates/<gap>_<K>.png of the sample's scaffold.")
@click.option("--choose", "chosen", multiple=True, metavar="ID:GAP=K",
              help="One choice, e.g. photorealistic/index_0003:001=2 (repeatable: many samples and gaps at once).")
@click.option("--choices", "choices_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="A file of choices, one `SAMPLE GAP K` per line (# comments).")
@click.option("--out", "out", metavar="URI", default=None,
              help="The run's output when it is not the spec's (as given to `genfab run --out`).")
@malformed_is_one_line("select")
def select_cmd(file: Path, sample_id: str | None, gap: str | None, candidate: int | None, chosen: tuple[str, ...],
               choices_file: Path | None, out: str | None) -> None:
    """worldexplorer's manual selection: copy candidate K of in-between view GAP (001, 003, 005, 007)
    into the sample's scaffold/final/, in the output of the resource in FILE (the one applied or run),
    and say per sample which views it still lacks. One choice with --sample, --gap and --candidate;
    any number with --choose ID:GAP=K (repeatable) and --choices FILE. Every candidate is checked
    before anything is copied: a missing one is one line listing the ones there (exit 2) and nothing
    is copied. Credentials as for `genfab run`: the environment, or spec.storage.secretRef's file
    under $GENFAB_SECRETS_DIR."""
    choices: list[Choice] = []
    single = (sample_id, gap, candidate)
    if any(v is not None for v in single):
        if any(v is None for v in single):
            fail("select", "--sample, --gap and --candidate go together (or use --choose ID:GAP=K)")
        assert sample_id is not None and gap is not None and candidate is not None
        choices.append((sample_id.strip("/"), gap, candidate))
    try:
        choices += [parse_choice(c) for c in chosen]
    except click.BadParameter as exc:
        fail("select", f"--choose {exc.message}")
    if choices_file is not None:
        choices += read_choices(choices_file)
    if not choices:
        fail("select", "nothing chosen: give --sample/--gap/--candidate, --choose ID:GAP=K or --choices FILE")
    stage, environ = _gated_stage(file, out)
    assert stage.manual_gate is not None
    try:
        store = open_confined(stage.output_uri, S3Settings.from_env(environ))
        lines = apply_choices(store, lambda sample: sample_folder(stage, sample), stage.manual_gate.required,
                              latest(choices))
    except (StorageError, ChoiceError) as exc:
        fail("select", str(exc))
    for line in lines:
        echo(line)
    complete = complete_count(lines)
    echo(f"{complete} of {len(lines)} sample(s) complete: the operator goes on by itself, a local run when "
               "run again" if complete else f"{len(lines)} sample(s) still wait for choices")
