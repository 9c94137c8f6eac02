"""The report's HTML (pure): one page per gallery page, every section on the first. Self-contained: one
inline stylesheet, no script, nothing loaded from another host; thumbnails and plots are files beside
the pages, the originals are linked relative to the output's root."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from genfab.report.model import Facts, Gallery, Section, Table

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2228;background:#f6f7f9}
header{background:#263238;color:#eceff1;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#b0bec5}main{padding:8px 24px 40px;max-width:1800px}
h2{margin:28px 0 8px;font-size:18px;border-bottom:1px solid #cfd8dc;padding-bottom:4px}
h3{margin:18px 0 6px;font-size:15px}p.note{color:#546e7a;margin:4px 0 8px}
table{border-collapse:collapse;background:#fff;margin:4px 0 12px}
th,td{border:1px solid #dde3e7;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eceff1;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.hash{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;word-break:break-all}
table.gallery{width:100%}table.gallery td{padding:4px}
table.gallery img{display:block;width:100%;max-width:224px;height:auto}
table.gallery td.sample{font-weight:600;min-width:110px;max-width:200px;overflow-wrap:anywhere}
dl.facts{margin:0;display:grid;grid-template-columns:auto 1fr;gap:0 8px;font-size:12px;min-width:220px}
dl.facts dt{color:#546e7a}dl.facts dd{margin:0}td.missing{color:#90a4ae;text-align:center;vertical-align:middle}
img.plot{background:#fff;border:1px solid #dde3e7;margin:4px 12px 12px 0}nav.pages a,nav.pages b{margin-right:6px}
ul.notes li{margin:2px 0}.phase-Succeeded{color:#2e7d32}.phase-Failed{color:#c62828}
"""
NUMERIC = {"samples", "succeeded", "reused", "redone", "failed", "shards", "seconds", "samples/s", "model load s",
           "GPU peak GiB", "train objects", "val objects", "PSNR", "SSIM", "LPIPS", "Gaussians", "PLY size"}


@dataclass(frozen=True)
class Thumb:
    src: str
    """The thumbnail, relative to the report's folder."""
    href: str
    """The original, relative to the report's folder."""
    alt: str
    width: int
    height: int


@dataclass(frozen=True)
class Unreadable:
    """A picture that is there but could not be read or decoded (too large, not an image)."""

    href: str


@dataclass(frozen=True)
class ShownRow:
    sample: str
    thumbs: tuple[Thumb | Unreadable | None, ...]
    """None: the picture was not made."""
    facts: Facts


@dataclass(frozen=True)
class ShownGallery:
    """One page of a gallery's pictured samples."""

    gallery: Gallery
    slug: str
    rows: tuple[ShownRow, ...]
    page: int
    pages: int
    pictured: int
    """Samples the report pictures (over every page); `len(gallery.rows)` is all of them."""


def page_name(slug: str, page: int) -> str:
    return "index.html" if page == 1 else f"{slug}-{page}.html"


def _table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    body = []
    for row in t.rows:
        cells = []
        for name, value in zip(t.header, row, strict=False):
            klass = ' class="num"' if name in NUMERIC else (' class="hash"' if name == "config hash" else "")
            klass = f' class="phase-{escape(value)}"' if name == "phase" else klass
            cells.append(f"<td{klass}>{escape(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = f'<p class="note">{escape(t.note)}</p>' if t.note else ""
    if not body:
        return f"<h3>{escape(t.title)}</h3>{note or '<p class=note>none</p>'}"
    rows = "".join(body)
    return f"<h3>{escape(t.title)}</h3>{note}<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _facts(facts: Facts) -> str:
    if not facts:
        return ""
    return '<dl class="facts">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts) + "</dl>"


def _thumb(t: Thumb | Unreadable | None) -> str:
    if t is None:
        return '<td class="missing">not made</td>'
    if isinstance(t, Unreadable):
        return f'<td class="missing"><a href="{escape(t.href)}">unreadable</a></td>'
    return (f'<td><a href="{escape(t.href)}"><img src="{escape(t.src)}" alt="{escape(t.alt)}" width="{t.width}" '
            f'height="{t.height}"></a></td>')


def _nav(shown: ShownGallery) -> str:
    if shown.pages <= 1:
        return ""
    links = [f"<b>{n}</b>" if n == shown.page else
             f'<a href="{page_name(shown.slug, n)}#{shown.slug}">{n}</a>' for n in range(1, shown.pages + 1)]
    return f'<nav class="pages">page {shown.page} of {shown.pages}: {" ".join(links)}</nav>'


def gallery_html(shown: ShownGallery) -> str:
    g = shown.gallery
    total = len(g.rows)
    if total == 0:
        return f'<h3 id="{shown.slug}">{escape(g.title)}</h3><p class="note">nothing made yet</p>'
    counted = (f"{total} sample(s)" if shown.pictured == total else
               f"{shown.pictured} of {total} samples pictured, evenly spaced in sample order (`genfab report "
               f"--max-pictures N` for more); every sample is listed in samples.csv")
    note = f'<p class="note">{escape(counted)}' + (f"; {escape(g.note)}" if g.note else "") + "</p>"
    head = "<th>sample</th>" + "".join(f"<th>{escape(c)}</th>" for c in g.columns) + "<th>facts</th>"
    rows = "".join(f'<tr data-sample="{escape(r.sample)}"><td class="sample">{escape(r.sample)}</td>'
                   + "".join(_thumb(t) for t in r.thumbs) + f"<td>{_facts(r.facts)}</td></tr>" for r in shown.rows)
    return (f'<h3 id="{shown.slug}">{escape(g.title)}</h3>{note}{_nav(shown)}'
            f'<table class="gallery"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{_nav(shown)}')


def section_html(section: Section, galleries: list[ShownGallery], plots: dict[str, str],
                 charts_missing: str | None = None) -> str:
    parts = [f"<h2>{escape(section.title)}</h2>"]
    if section.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in section.notes) + "</ul>")
    parts += [_table(t) for t in section.tables]
    for plot in section.plots:
        if plot.name in plots:
            parts.append(f'<img class="plot" src="{escape(plots[plot.name])}" alt="{escape(plot.title)}" '
                         'width="420" height="210">')
        elif charts_missing:
            parts.append(f'<p class="note">{escape(plot.title)}: {escape(charts_missing)}</p>')
    parts += [gallery_html(g) for g in galleries]
    return "".join(parts)


CSP = "script-src 'none'; object-src 'none'; frame-src 'none'; base-uri 'none'; form-action 'none'"
"""The report runs no script and embeds nothing: a string a stage wrote that slipped past escaping
still could not run (pictures and the inline style stay allowed, on file:// as over HTTP)."""


def document(title: str, subtitle: str, body: str) -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header><main>{body}</main></body></html>")
