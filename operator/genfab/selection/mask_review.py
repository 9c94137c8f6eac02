"""`genfab mask IMAGE --review`'s page: click the object (shift-click or right-click what is not it),
see the mask, save it. Each click asks the labeler (`genfab.stages.reference_object.mask_labeler`, a
child process: the control plane never imports torch) for the mask of every prompt so far; Save runs it
once more into the mask's own path, so the saved mask and its `<mask>.json` are what `genfab mask` with
the same prompts writes. Served like `genfab review` (genfab.selection.served): loopback, a token."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from genfab.selection.served import BoundedServer, TokenHandler, bind

MAX_PROMPTS_BODY = 64 << 10
MAX_PROMPTS = 64
"""Points (object and not) one mask may be asked for with."""
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def run_labeler(spec: dict[str, Any]) -> tuple[int, str]:
    """(exit code, its one line): the record's JSON on success, else `genfab mask: ...`."""
    done = subprocess.run([sys.executable, "-m", "genfab.stages.reference_object.mask_labeler", json.dumps(spec)],
                          capture_output=True, text=True)
    if done.returncode == 0:
        return 0, done.stdout.strip()
    lines = [line for line in done.stderr.splitlines() if line.startswith("genfab mask: ")]
    return (done.returncode if done.returncode in (1, 2) else 2,
            lines[-1] if lines else f"genfab mask: the labeler failed (exit {done.returncode}): "
            f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")


def prompts_of(body: Any) -> dict[str, Any] | str:
    """The page's prompts ({points, negative}: [x, y] pixels), or why they are not."""
    if not isinstance(body, dict):
        return "the request is not the page's JSON"
    found: dict[str, Any] = {}
    for key in ("points", "negative"):
        raw = body.get(key) or []
        if not isinstance(raw, list) or len(raw) > MAX_PROMPTS or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                           for v in p) for p in raw):
            return f"{key} must be at most {MAX_PROMPTS} [x, y] pixel pairs"
        found[key] = [[float(x), float(y)] for x, y in raw]
    if not found["points"]:
        return "click the object first"
    return found


@dataclass
class MaskReview:
    """One image's mask being made on the page."""

    image: Path
    out: Path
    spec: dict[str, Any]
    """The labeler's settings besides the prompts and the output (method, model, models)."""
    token: str
    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="genfab-mask-")))
    saved: threading.Event = field(default_factory=threading.Event)
    """Set once the mask is saved: the server may end."""

    def preview(self, prompts: dict[str, Any]) -> dict[str, Any]:
        target = self.scratch / "preview.png"
        code, line = run_labeler({**self.spec, **prompts, "box": None, "image": str(self.image), "out": str(target)})
        if code:
            return {"ok": False, "error": line}
        return {"ok": True, "record": json.loads(line),
                "mask": "data:image/png;base64," + base64.b64encode(target.read_bytes()).decode()}

    def save(self, prompts: dict[str, Any]) -> dict[str, Any]:
        code, line = run_labeler({**self.spec, **prompts, "box": None, "image": str(self.image), "out": str(self.out)})
        if code:
            return {"ok": False, "error": line}
        self.saved.set()
        return {"ok": True, "record": json.loads(line), "saved": str(self.out)}


def make_mask_server(review: MaskReview, host: str, port: int) -> BoundedServer:
    return bind(_MaskHandler, review.token, host, port, review=review)


class _MaskHandler(TokenHandler):
    review: MaskReview

    def get(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/":
            self._send(200, page(self.review).encode(), "text/html; charset=utf-8")
        elif path == "/image":
            kind = IMAGE_TYPES.get(self.review.image.suffix.lower(), "application/octet-stream")
            self._send(200, self.review.image.read_bytes(), kind)
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path not in ("/preview", "/save"):
            self._send(404, b"not found", "text/plain")
            return
        if not self._allowed(parse_qs(url.query)):
            return
        size = self._body_size(MAX_PROMPTS_BODY, "too many prompts in one request")
        if size is None:
            return
        try:
            prompts = prompts_of(json.loads(self._read_body(size) or b"{}"))
        except (ValueError, RecursionError):
            prompts = "the request is not the page's JSON"
        if isinstance(prompts, str):
            result: dict[str, Any] = {"ok": False, "error": prompts}
        else:
            result = (self.review.preview if url.path == "/preview" else self.review.save)(prompts)
        self._send(200 if result["ok"] else 400, json.dumps(result).encode(), "application/json")


def page(review: MaskReview) -> str:
    data = json.dumps({"token": review.token, "image": review.image.name, "out": str(review.out),
                       "method": review.spec["method"]}).replace("<", "\\u003c").replace(">", "\\u003e")
    return PAGE.replace("__IMAGE__", escape(str(review.image))).replace("__DATA__", data)


PAGE = resources.files("genfab.selection").joinpath("mask_page.html").read_text(encoding="utf-8")
"""The page: its script sends the clicks as prompts, shows the mask over the image, and saves."""
