"""`genfab mask IMAGE`: reference-object's `inputMask` from one image, with SAM2 from the model location
(points and/or a box) or a named classical method. The work runs in the stages package
(`genfab.stages.reference_object.mask_labeler`, in a child process: the control plane never imports
torch); this module reads the options and relays its one line and exit code."""

from __future__ import annotations

import secrets
import shutil
import sys
from pathlib import Path

import click

from genfab.cli.terminal import echo, fail
from genfab.selection.mask_review import MaskReview, make_mask_server, run_labeler
from genfab.selection.served import is_loopback, serve_until


def _pair(value: str, option: str, count: int) -> list[float]:
    parts = value.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) != count:
        shape = "X,Y" if count == 2 else "X0,Y0,X1,Y1"
        fail("mask", f"{option} {value!r}: expected {shape} in pixels of the image, e.g. "
                     f"{'320,240' if count == 2 else '100,80,540,400'}", code=1)
    return numbers


@click.command("mask")
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--point", "points", multiple=True, metavar="X,Y",
              help="A pixel on the object (repeatable).")
@click.option("--negative", "negatives", multiple=True, metavar="X,Y",
              help="A pixel that is not the object (repeatable).")
@click.option("--box", metavar="X0,Y0,X1,Y1", help="A box around the object, in pixels.")
@click.option("--method", type=click.Choice(["sam2", "grabcut"]), default="sam2", show_default=True,
              help="sam2: SAM2 from the model location. grabcut: OpenCV's GrabCut, no weights (recorded as such).")
@click.option("--models", metavar="URI",
              help="The model location holding SAM2 (a folder, file:// or s3://; default: GENFAB_MODELS).")
@click.option("--sam2-model", default="facebook/sam2.1-hiera-large", show_default=True,
              help="SAM2's folder under the model location (sam2.1_hiera_l.yaml and sam2.1_hiera_large.pt).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the mask PNG (default: IMAGE's folder, <name>_mask.png).")
@click.option("--review", is_flag=True,
              help="Open a local page instead: click the object (shift-click what is not), see the mask, save.")
@click.option("--host", default="127.0.0.1", show_default=True, help="--review: the loopback address to listen on.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=0, show_default=True,
              help="--review: the port (0: any free one).")
def mask_cmd(image: Path, points: tuple[str, ...], negatives: tuple[str, ...], box: str | None, method: str,
             models: str | None, sam2_model: str, out: Path | None, review: bool, host: str, port: int) -> None:
    """Make the reference-object pipeline's `inputMask` from IMAGE: white where the object is, black
    elsewhere, the size of IMAGE. Give the object with --point (and --negative) pixels and/or a --box.
    With --method sam2 (the default) SAM2 is read from the model location and, of its three masks, the
    best scored is kept; without SAM2's weights there, the command exits 2 naming them and
    --method grabcut, which needs none. Beside the mask, `<mask>.json` records the method, the model,
    the prompts, SAM2's score and the object's share of the image; the same is printed as one JSON
    line. Bad input (an unreadable image, a prompt outside it, no object found) exits 1 with one line
    and writes nothing. With --review, a page on this machine (its URL, with a token, is printed) shows
    IMAGE: each click on the object (shift-click or right-click: not the object) remakes the mask over
    it with the same method; "Save mask" writes the mask and its record, and the command ends."""
    if review:
        serve(image, out, method, sam2_model, models, host, port)
        return
    spec = {"image": str(image.resolve()), "out": str((out or image.with_name(f"{image.stem}_mask.png")).resolve()),
            "points": [_pair(p, "--point", 2) for p in points],
            "negative": [_pair(p, "--negative", 2) for p in negatives],
            "box": _pair(box, "--box", 4) if box else None, "method": method, "model": sam2_model, "models": models}
    code, line = run_labeler(spec)
    if code:
        echo(line, err=True)
        sys.exit(code)
    echo(line)


def serve(image: Path, out: Path | None, method: str, sam2_model: str, models: str | None, host: str,
          port: int) -> None:
    """`--review`: the page until its mask is saved (or Ctrl-C)."""
    if not is_loopback(host):
        fail("mask", f"--host {host}: not a loopback address; the page runs the labeler for whoever reaches it "
                     "(keep 127.0.0.1 and tunnel: ssh -L PORT:127.0.0.1:PORT)", code=1)
    if not image.is_file():
        fail("mask", f"{image}: no such image file", code=1)
    target = (out or image.with_name(f"{image.stem}_mask.png")).resolve()
    page = MaskReview(image.resolve(), target, {"method": method, "model": sam2_model, "models": models},
                      secrets.token_urlsafe(24))
    try:
        server = make_mask_server(page, host, port)
    except OSError as exc:
        fail("mask", f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})", code=1)
    echo(f"mask: http://{host}:{server.server_address[1]}/?token={page.token}")
    echo(f"click the object in {image.name}; Save writes {target}; Ctrl-C ends without saving")
    sys.stdout.flush()
    try:
        serve_until(server, page.saved, "mask-page", lambda: echo(f"saved: {target} and {target}.json"))
    finally:
        shutil.rmtree(page.scratch, ignore_errors=True)  # the previews
