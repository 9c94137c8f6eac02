"""The scene pipelines' sections: worldexplorer's scaffold (the eight views, the candidates a person
chooses from), its trajectory and 3DGS; vistadream's outpaint, depth and scene; per scene the
held-out PSNR/SSIM/LPIPS, the Gaussians and the PLY's size."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from genfab.api.pipelines.worldexplorer import GAP_VIEWS, final_key
from genfab.contract.names import RUN_DIR
from genfab.report.model import Facts, Gallery, Listing, Picture, Row, Section, Table
from genfab.report.sections.quality import quality_section

TRAJECTORY_FRAMES = 6
"""Trajectory frames pictured per scene, evenly spaced."""
SCAFFOLD = "scaffold/"
VIEWS = tuple(f"{v:03d}" for v in range(8))


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1000  # type: ignore[assignment]
    return str(n)


def _metric(doc: Mapping[str, Any] | None, name: str, digits: int = 2) -> str:
    value = (doc or {}).get(name)
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def scene_facts(metrics: Mapping[str, Any]) -> Facts:
    """The 3DGS stage's `metrics.json`: held-out (or training-view) quality and the Gaussians."""
    return (("PSNR", _metric(metrics, "psnr")), ("SSIM", _metric(metrics, "ssim", 3)),
            ("LPIPS", _metric(metrics, "lpips", 3)), ("Gaussians", str(metrics.get("num_gaussians", "-"))),
            ("evaluated on", f"{metrics.get('evaluated_on', '?')} views ({metrics.get('views', '?')})"))


def vistadream_facts(metrics: Mapping[str, Any]) -> Facts:
    """vistadream's `gaussians/metrics.json`: the input view's PSNR (its only view) and the splats."""
    return (("input-view PSNR", _metric(metrics, "input_view_psnr")), ("Gaussians", str(metrics.get("splats", "-"))),
            ("seconds", _metric(metrics, "seconds", 1)))


def ply_size(listing: Listing, *folders: str) -> int | None:
    """The size of the scene's PLY: the first `.ply` in the first folder that has one."""
    for folder in folders:
        for key in listing.under(folder):
            if key.endswith(".ply") and "/" not in key[len(folder):]:
                return listing.keys[key]
    return None


def evenly(items: list[str], n: int) -> list[str]:
    """At most `n` of `items`, evenly spaced, the first and the last included."""
    if len(items) <= n:
        return items
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def _samples(listing: Listing, pattern: str) -> list[str]:
    """The scenes whose stage folders match `pattern`; genfab's own records (`_genfab/`: the quality
    tables are under `_genfab/quality/<stage>/`) are no scene."""
    found = set()
    for key in listing.keys:
        if not key.startswith(f"{RUN_DIR}/") and (m := re.match(pattern, key)):
            found.add(m.group(1))
    return sorted(found)


def metrics_table(listing: Listing, samples: list[str], metrics_key: str,
                  describe: Callable[[Mapping[str, Any]], Facts], ply_folders: tuple[str, ...]) -> Table:
    """Per scene: its metrics (as `describe` names them) and its PLY's size."""
    rows: list[tuple[str, ...]] = []
    header: tuple[str, ...] = ("sample",)
    for s in samples:
        doc = listing.json(f"{s}/{metrics_key}")
        size = ply_size(listing, *(f"{s}/{f}" for f in ply_folders))
        if doc is None and size is None:
            continue
        facts = describe(doc or {})
        header = ("sample", *(k for k, _ in facts), "PLY size")
        rows.append((s, *(v for _, v in facts), human_size(size)))
    return Table("Per scene", header, tuple(rows), "" if rows else "no scene trained yet")


def awaiting_choice(listing: Listing, samples: list[str]) -> Gallery:
    """Each in-between view still without its final picture, with every candidate (manual selection)."""
    rows, widest = [], 0
    for s in samples:
        folder = f"{s}/{SCAFFOLD}"
        for gap in GAP_VIEWS:
            if f"{folder}{final_key(gap)}" in listing.keys:
                continue
            candidates = [k for k in listing.under(f"{folder}candidates/{gap}_") if k.endswith(".png")]
            if candidates:
                widest = max(widest, len(candidates))
                rows.append(Row(f"{s} view {gap}", tuple(Picture(k) for k in candidates),
                                (("choose", f"`genfab review` or `genfab select FILE --choose {s}:{gap}=K`"),)))
    return Gallery("Candidates awaiting a person's choice", tuple(f"candidate {k}" for k in range(widest)),
                   tuple(rows))


def worldexplorer(listing: Listing) -> tuple[Section, ...]:
    samples = _samples(listing, r"(.+)/(?:scaffold|scenes)/")
    scaffold_rows, scene_rows = [], []
    for s in samples:
        folder = f"{s}/{SCAFFOLD}"
        scaffold_rows.append(Row(s, tuple(_present(listing, f"{folder}{final_key(v)}") for v in VIEWS),
                                 facts_key=None))
        frames = [k for k in listing.under(f"{s}/scenes/img2trajvid/images/") if k.endswith(".png")]
        preview = f"{s}/scenes/gaussians/preview.png"
        if frames or preview in listing.keys:
            shown = evenly(frames, TRAJECTORY_FRAMES)
            scene_rows.append(Row(s, (*(Picture(k) for k in shown),
                                      *((None,) * (TRAJECTORY_FRAMES - len(shown))), _present(listing, preview)),
                                  (("frames", str(len(frames))),
                                   ("PLY", human_size(ply_size(listing, f"{s}/scenes/gaussians/")))),
                                  f"{s}/scenes/gaussians/metrics.json"))
    galleries = [Gallery("Scaffold: the eight views", VIEWS, tuple(scaffold_rows),
                         note="000 is the sample's image; 002/004/006 generated; 001/003/005/007 inpainted between "
                              "their neighbours (a person's choice with selection: manual)")]
    waiting = awaiting_choice(listing, samples)
    if waiting.rows:
        galleries.append(waiting)
    columns = (*(f"frame {i + 1}" for i in range(TRAJECTORY_FRAMES)), "3DGS render")
    galleries.append(Gallery("Trajectory and the trained scene", columns, tuple(scene_rows), scene_facts,
                             f"{TRAJECTORY_FRAMES} trajectory frames evenly spaced, then the trained scene's "
                             "preview"))
    table = metrics_table(listing, samples, "scenes/gaussians/metrics.json", scene_facts, ("scenes/gaussians/",))
    return Section("Scenes", tables=(table,), galleries=tuple(galleries)), *_quality(listing, scene_rows, columns,
                                                                                    scene_facts)


def _quality(listing: Listing, rows: list[Row], columns: tuple[str, ...],
             facts: Callable[[Mapping[str, Any]], Facts]) -> tuple[Section, ...]:
    """The scenes' quality section (a histogram and a worst-first gallery per figure), when measured."""
    by_id = {r.sample: r for r in rows}
    quality = quality_section(listing, lambda sid: by_id.get(sid) or Row(sid, (None,) * len(columns)), columns, facts)
    return (quality,) if quality else ()


def vistadream(listing: Listing) -> tuple[Section, ...]:
    samples = _samples(listing, r"(.+)/(?:outpaint|depth|gaussians|coarse|render)/")
    rows = []
    for s in samples:
        views = [k for k in listing.under(f"{s}/coarse/views/") if k.endswith(".png")]
        rows.append(Row(s, (*(_present(listing, f"{s}/{k}") for k in ("outpaint/input.png", "outpaint/outpaint.png",
                                                                       "depth/depth.png", "gaussians/preview.png")),
                            *(Picture(k) for k in evenly(views, 3)), *((None,) * (3 - len(evenly(views, 3))))),
                        (("PLY", human_size(ply_size(listing, f"{s}/render/", f"{s}/coarse/", f"{s}/gaussians/"))),
                         ("video", "render/video.mp4" if f"{s}/render/video.mp4" in listing.keys else "-")),
                        f"{s}/gaussians/metrics.json"))
    columns = ("input", "outpaint", "depth", "3DGS render", "coarse view 1", "coarse view 2", "coarse view 3")
    gallery = Gallery("From one image to a scene", columns, tuple(rows), vistadream_facts)
    table = metrics_table(listing, samples, "gaussians/metrics.json", vistadream_facts,
                          ("render/", "coarse/", "gaussians/"))
    return Section("Scenes", tables=(table,), galleries=(gallery,)), *_quality(listing, rows, columns, vistadream_facts)


def _present(listing: Listing, key: str) -> Picture | None:
    return Picture(key) if key in listing.keys else None
