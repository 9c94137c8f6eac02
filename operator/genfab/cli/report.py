"""`genfab report OUTPUT`: write a run's report into its output and print where it is; `genfab run`
writes it at the end of every run through `write_run_report`."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import click

from genfab.cli.follow import output_uri
from genfab.cli.terminal import echo, malformed_is_one_line
from genfab.report import report_unavailable
from genfab.storage import S3Settings, StorageError, open_confined


def shown_location(uri: str) -> str:
    """A `file://` report as a path a browser or a terminal opens; any other URI as it is."""
    if uri.startswith("file://"):
        path = uri.removeprefix("file://")
        return str(Path(path)) if not path.startswith("./") else path[2:]
    return uri


def write_run_report(uri: str, environ: Mapping[str, str], max_pictures: int | None = None
                     ) -> tuple[str | None, str]:
    """(where the report is, what it holds), or (None, why it was not written): never raises for a
    report that cannot be made, the run's own data stays as it is."""
    missing = report_unavailable()
    if missing:
        return None, missing
    from genfab.report.writer import MAX_PICTURES, ReportError, ReportWriter

    try:
        store = open_confined(uri, S3Settings.from_env(dict(environ)))
        result = ReportWriter(store, max_pictures if max_pictures is not None else MAX_PICTURES).write()
    except (ReportError, StorageError, ValueError) as exc:
        return None, str(exc)
    except Exception as exc:  # whatever a run's files do to the report, the run's record stands
        return None, f"the report could not be written ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    note = f", {result.unreadable} picture(s) unreadable" if result.unreadable else ""
    note += f"; {result.charts_missing}" if result.charts_missing else ""
    note += "".join(f"; left out: {why}" for why in result.left_out)
    return shown_location(result.uri), (f"{result.pictured} of {result.samples} sample row(s) pictured, "
                                        f"{result.pages} page(s), {result.bytes / 1e6:.1f} MB, "
                                        f"{result.seconds:.1f} s{note}")


@click.command("report")
@click.argument("output")
@click.option("--max-pictures", type=click.IntRange(min=0), default=None, metavar="N",
              help="Samples pictured per gallery, evenly spaced (default 200); every sample is in samples.csv.")
@malformed_is_one_line("report")
def report_cmd(output: str, max_pictures: int | None) -> None:
    """Write the report of the run in OUTPUT (a folder, file:// or s3:// URI; credentials from the
    environment, as for `genfab status`) into OUTPUT/_genfab/report/ and print its path: a
    self-contained HTML page (no other host) with the stage table, what produced each stage's
    samples, the config hashes and reuse, the drops, and per pipeline the samples' pictures
    (relighting's input | mask | albedo | degraded | output, DiFix's triplets, reference-object's
    YOLO polygons and class counts, the scenes' views, frames, renders and metrics, a TuningRun's
    curves and eval images). `genfab run` writes it at the end of every run. A malformed summary or
    status is left out and named (the other gives the run's table). Exit 2 when it cannot be written
    (neither is readable, or the storage refuses)."""
    where, text = write_run_report(output_uri(output), os.environ, max_pictures)
    if where is None:
        echo(f"genfab report: {text}", err=True)
        sys.exit(2)
    echo(where)
    echo(f"  {text}")
