"""`genfab review OUTPUT`: the manual selection gate's page (genfab.selection.review), served until all is chosen."""

from __future__ import annotations

import os
import sys

import click

from genfab.cli.follow import output_uri
from genfab.cli.terminal import echo, fail, malformed_is_one_line
from genfab.report.writer import ReportError
from genfab.selection.review import Review, going_on, is_loopback, make_server
from genfab.selection.served import serve_until
from genfab.storage import S3Settings, StorageError, open_confined


@click.command("review")
@click.argument("output")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on. Loopback only unless --allow-remote.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=0, show_default=True,
              help="The port (0: any free one).")
@click.option("--allow-remote", is_flag=True,
              help="Listen on a non-loopback --host: anyone who can reach it and has the printed URL (its token) "
                   "can choose; plain HTTP, so use it on a trusted network or through an SSH tunnel.")
@malformed_is_one_line("review")
def review_cmd(output: str, host: str, port: int, allow_remote: bool) -> None:
    """A local page for worldexplorer's manual selection gate in the run at OUTPUT (a folder, file://
    or s3:// URI; credentials from the environment): every waiting sample's in-between views, each
    with its candidates beside the two views it joins. Click a candidate (or keys: j/k or the arrows
    between views, 0-9 or h/l to choose), then "Apply choices" (Ctrl+Enter) copies every choice at
    once with the code of `genfab select` and says how the run goes on. It listens on 127.0.0.1 and
    prints the URL with its token (every request needs it); another address only with
    --allow-remote. Ends by itself, saying "all chosen" and how the run goes on, once no sample waits
    (at once when none does), or at Ctrl-C."""
    if not is_loopback(host) and not allow_remote:
        fail("review", f"--host {host}: not a loopback address; the page lets whoever reaches it copy files in "
             "the output, so say --allow-remote to listen there (or keep 127.0.0.1 and tunnel: "
             "ssh -L PORT:127.0.0.1:PORT)")
    try:
        store = open_confined(output_uri(output), S3Settings.from_env(dict(os.environ)))
        review = Review(store)
        waiting = review.state()["samples"]
    except (ReportError, StorageError, ValueError) as exc:
        fail("review", f"{output}: {exc}")
    if not waiting:  # nothing to serve: say so and how the run goes on
        echo(f"all chosen: no sample at {output} waits for a choice; "
             + going_on(review.executor))
        return
    try:
        server = make_server(review, host, port)
    except OSError as exc:
        fail("review", f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})")
    shown_host = f"[{host}]" if ":" in host else host
    echo(f"review: http://{shown_host}:{server.server_address[1]}/?token={review.token}", nl=True)
    if not is_loopback(host):
        echo("listening beyond this machine: the token in the URL is the only protection (plain HTTP)")
    echo(f"{len(waiting)} sample(s) wait for a choice; it ends once every one is chosen, or Ctrl-C")
    sys.stdout.flush()
    serve_until(server, review.all_chosen, "review-server", lambda: echo("all chosen: " + going_on(review.executor)))
