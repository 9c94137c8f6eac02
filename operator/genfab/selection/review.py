"""`genfab review`'s page: worldexplorer's manual selection gate in a browser. Every waiting sample's
in-between views, each with its candidates beside the two views it must join; click (or keys) to
choose, one button applies every choice through `genfab.selection.choices.apply_choices` (the code of
`genfab select`), then the page says how the run goes on.

Served by Python's own HTTP server on loopback by default. Every request must carry the page's
random token (in the printed URL) and name this server in its Host header: another site open in the
same browser cannot post choices (it does not know the token) nor reach the server under another
name (DNS rebinding)."""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import asdict
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from genfab.api.pipelines.worldexplorer import GAP_VIEWS, final_key
from genfab.api.status_document import StatusDocument
from genfab.contract import STATUS_KEY
from genfab.contract.documents import DocumentError
from genfab.report.writer import MAX_DOCUMENT, MAX_IMAGE, ReportError, list_output
from genfab.selection.choices import ChoiceError, apply_choices, complete_count
from genfab.selection.served import BoundedServer, TokenHandler, bind, is_loopback
from genfab.selection.waiting import folder_of, shown_keys, waiting_samples
from genfab.storage import Storage, StorageError

MAX_BODY = 4 << 20
__all__ = ["Review", "going_on", "is_loopback", "make_server", "page"]


def going_on(executor: str | None) -> str:
    """How a run goes on once its samples are chosen, for the executor that wrote it."""
    if executor == "local":
        return ("run the same `genfab run` command again and the run goes on after the scaffold (committed samples "
                "are reused)")
    return "the operator sees the complete final/ folders and starts the expansion by itself"


def how_to_go_on(executor: str | None, complete: int, total: int) -> str:
    if complete == 0:
        return f"{total} sample(s) still wait for choices"
    return f"{complete} of {total} sample(s) complete: {going_on(executor)}"


class Review:
    """The gate's state and the choices' application, for one output."""

    def __init__(self, store: Storage, token: str | None = None) -> None:
        self.store = store
        self.token = token or secrets.token_urlsafe(24)
        self.executor: str | None = None
        try:
            if store.exists(STATUS_KEY):
                self.executor = StatusDocument.read(store.read_at_most(STATUS_KEY, MAX_DOCUMENT, STATUS_KEY),
                                                    STATUS_KEY).executor
        except (StorageError, DocumentError):  # a status genfab did not write
            self.executor = None
        self.allowed: set[str] = set()
        self.shown: set[str] = set()
        """The samples the page was last given: the only ones a choice may name."""
        self.all_chosen = threading.Event()
        """Set once an apply left no sample waiting (the page has had its answer): the server may end."""

    def state(self) -> dict[str, Any]:
        waiting = waiting_samples(list_output(self.store))
        self.allowed = shown_keys(waiting)
        self.shown = {w.sample for w in waiting}
        return {"output": self.store.uri, "executor": self.executor,
                "samples": [{"sample": w.sample, "folder": folder_of(w.sample),
                             "gaps": [asdict(g) for g in w.gaps]} for w in waiting]}

    def image(self, key: str) -> bytes | None:
        if key not in self.allowed:
            return None
        try:
            return self.store.read_at_most(key, MAX_IMAGE, key)
        except StorageError:  # StorageTooLarge included
            return None

    def apply(self, choices: list[Any]) -> dict[str, Any]:
        chosen: dict[tuple[str, str], int] = {}
        for item in choices:
            if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
                    or item[1] not in GAP_VIEWS or not isinstance(item[2], int) or isinstance(item[2], bool)):
                return {"ok": False, "error": f"a choice must be [sample, view, candidate], got {item!r}"}
            if item[0] not in self.shown:
                return {"ok": False, "error": f"{item[0][:200]!r} is not a sample this page shows; nothing was copied"}
            chosen[(item[0], item[1])] = item[2]
        if not chosen:
            return {"ok": False, "error": "nothing chosen: click a candidate first"}
        try:
            lines = apply_choices(self.store, folder_of, tuple(final_key(g) for g in GAP_VIEWS), chosen)
        except (ChoiceError, StorageError) as exc:
            return {"ok": False, "error": str(exc)}
        complete = complete_count(lines)
        left = len(waiting_samples(list_output(self.store)))
        return {"ok": True, "lines": lines, "complete": complete, "allChosen": left == 0,
                "next": how_to_go_on(self.executor, complete, len(lines))
                + ("" if left else f"; {left} sample(s) still wait")}


def make_server(review: Review, host: str, port: int) -> BoundedServer:
    return bind(_Handler, review.token, host, port, review=review)


class _Handler(TokenHandler):
    review: Review

    def get(self, path: str, query: dict[str, list[str]]) -> None:
        try:
            self._get(path, query)
        except (ReportError, StorageError) as exc:  # the output cannot be listed or read now: one line
            self._send(503, str(exc).encode(), "text/plain; charset=utf-8")

    def _get(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/":
            self._send(200, page(self.review.token, self.review.state()).encode(), "text/html; charset=utf-8")
        elif path == "/state":
            self._send(200, json.dumps(self.review.state()).encode(), "application/json")
        elif path == "/image":
            data = self.review.image((query.get("key") or [""])[0])
            if data is None:
                self._send(404, b"no such picture on this page", "text/plain")
            else:
                self._send(200, data, "image/png")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/apply" or not self._allowed(parse_qs(url.query)):
            if url.path != "/apply":
                self._send(404, b"not found", "text/plain")
            return
        size = self._body_size(MAX_BODY, "too many choices in one request")
        if size is None:
            return
        try:
            body = json.loads(self._read_body(size) or b"{}")
            result = self.review.apply(body.get("choices") or [])
        except (ValueError, AttributeError, TypeError, RecursionError):
            result = {"ok": False, "error": "the request is not the page's JSON"}
        self._send(200 if result["ok"] else 400, json.dumps(result).encode(), "application/json")
        if result.get("allChosen"):  # answered first: then `genfab review` says so and ends
            self.review.all_chosen.set()


def page(token: str, state: dict[str, Any]) -> str:
    # inside <script>: no `<` at all (a folder named `<!--<script>` would change how the page parses)
    data = json.dumps({"token": token, "state": state}).replace("<", "\\u003c").replace(">", "\\u003e")
    return PAGE.replace("__OUTPUT__", escape(state["output"])).replace("__DATA__", data)


PAGE = resources.files("genfab.selection").joinpath("review_page.html").read_text(encoding="utf-8")
"""The page: its script renders the state, takes clicks and keys, and posts the choices."""
