"""`genfab report`: read a run's output (its listing, summary and status, the documents each section
asks for), make the thumbnails and plots, and write the pages into `{output}/_genfab/report/`.

Bounded for large runs: each gallery pictures at most `max_pictures` samples, evenly spaced in sample
order, `PAGE_ROWS` to a page; every sample is listed in `samples.csv`; documents and pictures are read
concurrently and only for the pictured samples (class counts read every label file)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TextIO, TypeVar

from pydantic import BaseModel, ValidationError

from genfab.api.errors import field_errors
from genfab.api.status_document import StatusDocument
from genfab.api.summary import RunSummary, StageRow
from genfab.contract import RUN_DIR, RUN_REPORT_DIR, SAMPLES_DIR, STATUS_KEY, SUMMARY_KEY
from genfab.report import charts_unavailable
from genfab.report.html import (
    ShownGallery,
    ShownRow,
    Thumb,
    Unreadable,
    document,
    gallery_html,
    page_name,
    section_html,
)
from genfab.report.keyindex import KeyIndex, UnsortedKeys
from genfab.report.model import Gallery, Listing, Picture, Row, Section
from genfab.report.sections import sections
from genfab.storage import Storage, StorageError
from genfab.storage.base import StorageTooLarge

PAGE_ROWS = 50
MAX_PICTURES = 200
"""Samples pictured per gallery by default."""
MAX_DOCUMENT = 64 << 20
MAX_IMAGE = 64 << 20
"""A picture larger than this is shown as unreadable (read whole into memory, one per worker)."""
SKIPPED = (f"{RUN_DIR}/progress/", f"{RUN_DIR}/logs/", f"{RUN_DIR}/train/", f"{RUN_REPORT_DIR}/", f"{SAMPLES_DIR}/")
MAX_KEYS = 20_000_000
"""Objects listed under an output at most (a run of 10,000 samples has about 100,000, a relighting run of
1,000,000 samples 6,000,000; the listing is held front-coded: `KeyIndex`, about 30 bytes a key)."""


class ReportError(RuntimeError):
    """The report cannot be written (no run there, the output unreadable): one line."""


def list_output(store: Storage, limit: int = MAX_KEYS) -> KeyIndex:
    """Every key under the output (but genfab's own logs, progress, sample manifests and report) with its
    size; more than `limit` objects is an error."""
    keys = KeyIndex()
    for obj in store.list(""):
        if obj.key.startswith(SKIPPED):
            continue
        if len(keys) >= limit:
            raise ReportError(f"{store.uri}: more than {limit:,} objects under the output; report a run's own "
                              "output, not a bucket or a folder of many runs")
        try:
            keys.add(obj.key, obj.size)
        except UnsortedKeys as exc:
            raise ReportError(f"{store.uri}: the storage listed {exc}") from None
    return keys.freeze()


@dataclass(frozen=True)
class ReportResult:
    uri: str
    """The report's first page."""
    pages: int
    pictures: int
    samples: int
    """Rows over every gallery (all samples, pictured or not)."""
    pictured: int
    bytes: int
    seconds: float
    unreadable: int
    """Pictures that could not be read or decoded (shown as such)."""
    charts_missing: str | None = None
    """Why the charts were not drawn (matplotlib missing), else None."""
    left_out: tuple[str, ...] = ()
    """Run documents that are not what genfab writes: what is wrong with each (the page says it too)."""


def pictured(rows: Sequence[Row], budget: int) -> list[Row]:
    """At most `budget` rows, evenly spaced, the first and the last included."""
    if len(rows) <= budget:
        return list(rows)
    if budget <= 1:
        return list(rows[:budget])
    return [rows[round(i * (len(rows) - 1) / (budget - 1))] for i in range(budget)]


def thumb_name(picture: Picture) -> str:
    digest = hashlib.sha1(f"{picture.key}\0{picture.mask}\0{picture.polygons}".encode()).hexdigest()[:20]
    return f"thumbs/{digest}.jpg"


def _slug(title: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "gallery"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def summary_from_status(document: StatusDocument) -> RunSummary:
    """The summary a status document alone gives (a run still going, or stopped before its end)."""
    status = document.status
    return RunSummary(
        kind=document.kind, name=document.metadata.name, executor=document.executor,
        phase=status.phase, output_uri=status.outputs.get("root"),
        stages=[StageRow(name=s.name, phase=s.phase, config_hash=s.config_hash, output_uri=s.output_uri,
                         samples=s.samples.total, succeeded=s.samples.succeeded, failed=s.samples.failed,
                         produced_by=dict(s.produced_by or {}), message=s.message) for s in status.stages])


M = TypeVar("M", bound=BaseModel)


class ReportWriter:
    def __init__(self, store: Storage, max_pictures: int = MAX_PICTURES, workers: int | None = None) -> None:
        self.store = store
        self.max_pictures = max_pictures
        self.workers = workers or min(16, 2 * (os.cpu_count() or 1))
        self.unreadable = 0
        self.charts_missing: str | None = None
        self.left_out: list[str] = []
        """Run documents that are not what genfab writes, left out of the report (said on its page)."""

    # -- reading
    def _read(self, key: str) -> bytes | None:
        try:
            return self.store.read_at_most(key, MAX_DOCUMENT, key)
        except (StorageError, StorageTooLarge, OSError):
            return None

    def _read_many(self, keys: list[str]) -> dict[str, bytes]:
        with ThreadPoolExecutor(self.workers) as pool:
            return {k: v for k, v in zip(keys, pool.map(self._read, keys), strict=True) if v is not None}

    def _document(self, model: type[M], key: str) -> M | None:
        """The run document `key` as `model`; None when it is not there, or (noted in `left_out`) when it
        is not what genfab writes: the report stands on the other one."""
        data = self._read(key)
        if not data:
            return None
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError) as exc:
            self.left_out.append(f"{self.store.child(key)}: not JSON ({' '.join(str(exc).split())[:200]})")
            return None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            self.left_out.append(f"{self.store.child(key)}: not what genfab writes there ({field_errors(exc)[0]})")
            return None

    def listing(self) -> Listing:
        status, summary = self._document(StatusDocument, STATUS_KEY), self._document(RunSummary, SUMMARY_KEY)
        if summary is None and status is not None:  # a run still going, or a summary left out
            summary = summary_from_status(status)
        if summary is None:
            if self.left_out:
                raise ReportError("; ".join(self.left_out))
            raise ReportError(f"{self.store.uri}: no genfab run there (no {SUMMARY_KEY} or {STATUS_KEY}); give the "
                              "output a run wrote to (the spec's output, or what `genfab run --out` named)")
        if not summary.output_uri:  # stage folders are relative to it
            summary = summary.model_copy(update={"output_uri": self.store.uri})
        return Listing(list_output(self.store), summary, status.status if status is not None else None, self._read,
                       self._read_many)

    # -- pictures
    def _thumb(self, picture: Picture) -> tuple[str, bytes, int, int] | None:
        from genfab.report.pictures import PictureError, thumbnail

        try:
            data = self.store.read_at_most(picture.key, MAX_IMAGE, picture.key)
            mask = self._read(picture.mask) if picture.mask else None
            polygons = self._read(picture.polygons) if picture.polygons else None
            jpeg, width, height = thumbnail(data, mask, polygons, picture.key)
        except (StorageError, StorageTooLarge, OSError, PictureError):
            self.unreadable += 1
            return None
        return thumb_name(picture), jpeg, width, height

    def _thumbs(self, pictures: list[Picture]) -> dict[Picture, tuple[str, bytes, int, int]]:
        unique = list(dict.fromkeys(pictures))
        with ThreadPoolExecutor(self.workers) as pool:
            made = dict(zip(unique, pool.map(self._thumb, unique), strict=True))
        return {p: m for p, m in made.items() if m is not None}

    # -- the whole report
    def write(self) -> ReportResult:
        start = time.monotonic()
        listing = self.listing()
        built = sections(listing)
        shown_rows: dict[int, list[Row]] = {}
        galleries = [g for s in built for g in s.galleries]
        for g in galleries:
            shown_rows[id(g)] = pictured(g.rows, self.max_pictures)
        facts_docs = self._read_many(sorted({r.facts_key for g in galleries if g.describe for r in shown_rows[id(g)]
                                             if r.facts_key and r.facts_key in listing.keys}))
        pictures = [p for g in galleries for r in shown_rows[id(g)] for p in r.pictures if p is not None]
        thumbs = self._thumbs(pictures)
        self.charts_missing = charts_unavailable()
        if self.charts_missing is None:
            from genfab.report.plots import draw

            plots = {p.name: draw(p) for s in built for p in s.plots}
        else:  # each chart's place says why it is not there
            plots = {}
        files: dict[str, bytes] = {name: jpeg for name, jpeg, _, _ in thumbs.values()}
        files.update({f"plots/{name}.png": png for name, png in plots.items()})
        plot_src = {name: f"plots/{name}.png" for name in plots}
        depth = "../" * len(RUN_REPORT_DIR.split("/"))

        def shown(g: Gallery, row: Row) -> ShownRow:
            doc = facts_docs.get(row.facts_key or "")
            extra: tuple[tuple[str, str], ...] = ()
            if g.describe and doc:
                try:
                    parsed = json.loads(doc)
                except (ValueError, RecursionError):
                    parsed = None
                    extra = (("facts", f"{row.facts_key}: not JSON"),)
                try:
                    extra = g.describe(parsed) if isinstance(parsed, dict) else extra
                except Exception:  # a value genfab never writes there: this row's facts only
                    extra = (("facts", f"{row.facts_key}: not what genfab writes there"),)
            return ShownRow(row.sample, tuple(
                None if p is None else
                Unreadable(depth + p.key) if p not in thumbs else
                Thumb(thumbs[p][0], depth + p.opens, f"{row.sample}: {p.opens}", thumbs[p][2], thumbs[p][3])
                for p in row.pictures), row.facts + extra)

        slugs: set[str] = set()
        pages_of: dict[int, list[ShownGallery]] = {}
        for g in galleries:
            rows = [shown(g, r) for r in shown_rows[id(g)]]
            slug = _slug(g.title, slugs)
            count = max(1, -(-len(rows) // PAGE_ROWS))
            pages_of[id(g)] = [ShownGallery(g, slug, tuple(rows[i * PAGE_ROWS:(i + 1) * PAGE_ROWS]), i + 1, count,
                                            len(rows)) for i in range(count)]
        summary = listing.summary
        title = f"{summary.kind}/{summary.name} ({summary.pipeline or 'pipeline unknown'})"
        subtitle = (f"{summary.phase} · {summary.executor or '?'} run · finished "
                    f"{summary.finished_at or '-'} · output {summary.output_uri}")
        body = "".join(f'<p class="note">Left out of this report: {escape(why)}</p>' for why in self.left_out)
        body += "".join(section_html(s, [pages_of[id(g)][0] for g in s.galleries], plot_src, self.charts_missing)
                        for s in built)
        body += ('<p class="note">Every sample: <a href="samples.csv">samples.csv</a>. Written by '
                 f"<code>genfab report {summary.output_uri}</code>.</p>")
        files["index.html"] = document(title, subtitle, body).encode()
        for g in galleries:
            for page in pages_of[id(g)][1:]:
                back = '<p><a href="index.html">the run</a></p>'
                files[page_name(page.slug, page.page)] = document(f"{title}: {g.title}", subtitle,
                                                                  back + gallery_html(page)).encode()
        self.store.delete_prefix(f"{RUN_REPORT_DIR}/")
        with tempfile.TemporaryDirectory(prefix="genfab-report-") as tmp:  # every sample: written as it goes
            csv_path = Path(tmp) / "samples.csv"
            with csv_path.open("w", newline="", encoding="utf-8") as out:
                write_samples_csv(built, out)
            self.store.upload_file(f"{RUN_REPORT_DIR}/samples.csv", csv_path)
            csv_bytes = csv_path.stat().st_size
        self.store.write_many(((f"{RUN_REPORT_DIR}/{name}", data) for name, data in sorted(files.items())),
                              workers=self.workers)
        return ReportResult(self.store.child(f"{RUN_REPORT_DIR}/index.html"),
                            sum(1 for n in files if n.endswith(".html")), len(thumbs),
                            sum(len(g.rows) for g in galleries if g.counted),
                            sum(len(shown_rows[id(g)]) for g in galleries if g.counted),
                            csv_bytes + sum(len(v) for v in files.values()), time.monotonic() - start,
                            self.unreadable,
                            self.charts_missing, tuple(self.left_out))


def write_samples_csv(built: list[Section], out: TextIO) -> None:
    """Every sample of every gallery, a line per picture column, with the picture's key (or nothing),
    then the sample's quality figures (a column each, blank where not measured)."""
    extra = [c for s in built for c in s.columns]
    writer = csv.writer(out)
    writer.writerow(("section", "gallery", "sample", "column", "key", *(n for c in extra for n in c.names)))
    for s in built:
        for g in (g for g in s.galleries if g.counted):
            for row in g.rows:
                figures = tuple(v for c in extra for v in c.values(row.sample))
                for column, picture in zip(g.columns, row.pictures, strict=False):
                    writer.writerow((s.title, g.title, row.sample, column, picture.key if picture else "", *figures))
