"""The dataset pipelines' sections: relighting's pairs, DiFix's triplets, reference-object's YOLO
dataset. Layouts are the lab's documents' (docs/pipelines/*.md, "Outputs"); stage folders come from
the run's own summary."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from genfab.api.relighting_params import AlbedoParams, LightingParams, ParamsDocument, SegmentParams
from genfab.report.model import Facts, Gallery, Listing, Picture, Plot, Row, Rows, Section, Series, Table
from genfab.report.sections.quality import quality_section
from genfab.report.sections.run import drop_facts, dropped_by_sample

IMAGE = r"\.(?:png|jpe?g|webp)$"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)


def _pick(doc: Mapping[str, Any], *path: str) -> Any:
    node: Any = doc
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _present(listing: Listing, key: str) -> Picture | None:
    return Picture(key) if key in listing.keys else None


P = TypeVar("P", bound=ParamsDocument)


# -- relighting -----------------------------------------------------------------------------------

def relighting_facts(meta: Mapping[str, Any]) -> Facts:
    stages = meta.get("stages") or {}
    seg = _params(SegmentParams, _pick(stages, "segment", "params"))
    alb = _params(AlbedoParams, _pick(stages, "albedo", "params"))
    light = _params(LightingParams, meta.get("lighting") or _pick(stages, "degrade", "params"))
    facts = [("mask", f"{seg.backend}, {_fmt('?' if seg.mask_fraction is None else seg.mask_fraction)} of the frame"),
             ("albedo", alb.method + (f" ({alb.variant})" if alb.variant else "")
              + (f", blend {_fmt(alb.blend)}" if alb.blend is not None else "")),
             ("lighting", light.method + (f", {light.normals} normals" if light.normals else "")),
             ("ambient", _fmt("-" if light.ambient is None else light.ambient)),
             ("light direction", _fmt("-" if light.light_direction is None else light.light_direction))]
    if meta.get("caption"):
        facts.append(("caption", str(meta["caption"])))
    return tuple(facts)


def _params(model: type[P], found: Any) -> P:
    """A stage's params as a sample's metadata holds them (a file of the output: "?" where unreadable)."""
    try:
        return model.model_validate(found if isinstance(found, Mapping) else {})
    except ValidationError:
        return model()


RELIGHTING_COLUMNS = ("input", "mask", "albedo", "degraded", "output")


def relighting_rows(listing: Listing) -> tuple[list[str], Callable[[str], Row]]:
    """The relighting samples' ids, in order, and the row of one (its five pictures, its metadata)."""
    organize = listing.stage_prefix("organize") or "data/"
    outputs = f"{organize}outputs/"
    segment = listing.stage_prefix("segment") or f"{organize}stage_1/"
    degrade = listing.stage_prefix("degrade") or f"{organize}stage_3/"
    albedo = listing.stage_prefix("albedo") or f"{organize}stage_2/"
    dropped = dropped_by_sample(listing)
    ids = set()
    for key in listing.each(outputs):
        if m := re.fullmatch(re.escape(outputs) + r"(.+)_metadata\.json", key):
            ids.add(m.group(1))
    for key in listing.each(segment):
        if m := re.fullmatch(re.escape(segment) + r"([^/]+)_mask\.png", key):
            ids.add(m.group(1))

    def row(sid: str) -> Row:
        source = f"{outputs}{sid}_input.png"
        # Before organize (a failed or running run) the input is not in the output: the input column
        # stays empty, and the mask is drawn over the segment's foreground.
        base = source if source in listing.keys else f"{segment}{sid}_foreground.png"
        mask = f"{segment}{sid}_mask.png"
        made = f"{outputs}{sid}_albedo.png"
        if made not in listing.keys:
            made = f"{albedo}{sid}_albedo.png"
        return Row(sid, (
            _present(listing, source),
            Picture(base, mask=mask) if base in listing.keys and mask in listing.keys else None,
            _present(listing, made), _present(listing, f"{degrade}{sid}_degraded.png"),
            _present(listing, f"{outputs}{sid}_output.png")),
            drop_facts(dropped[sid]) if sid in dropped else (), facts_key=f"{outputs}{sid}_metadata.json")

    return sorted(ids), row


def relighting(listing: Listing) -> tuple[Section, ...]:
    """The pairs, then (where the samples were measured) their quality figures."""
    ids, row = relighting_rows(listing)
    gallery = Gallery("Pairs", RELIGHTING_COLUMNS, Rows(ids, row), relighting_facts,
                      "mask: the person tinted; degraded: the albedo under the new lighting; output: the pair's "
                      "relit image (recombined with the background)")
    quality = quality_section(listing, row, RELIGHTING_COLUMNS, relighting_facts)
    return (Section("Relighting pairs", galleries=(gallery,)), *((quality,) if quality else ()))


# -- difix ----------------------------------------------------------------------------------------

def difix_facts(meta: Mapping[str, Any]) -> Facts:
    fractions = _pick(meta, "provenance", "mask_fraction") or {}
    return (("scene", str(meta.get("scene_name", "?"))),
            ("target", f"camera {meta.get('target_cam_id', '?')}, frame {meta.get('target_fname', '?')}"),
            ("reference", f"camera {meta.get('reference_cam_id', '?')}, frame {meta.get('reference_fname', '?')}"),
            ("mask fraction", ", ".join(f"{k} {_fmt(v)}" for k, v in fractions.items()) or "-"))


def difix(listing: Listing) -> tuple[Section, ...]:
    root = listing.stage_prefix("export") or ""
    manifests = f"{listing.stage_prefix('split') or root}manifests/"
    split_of: dict[str, str] = {}
    group_of: dict[str, str] = {}
    for split in ("train", "test"):
        for item in listing.jsonl(f"{manifests}split_{split}.jsonl"):
            split_of[str(item.get("sample_id"))] = split
            group_of[str(item.get("sample_id"))] = str(item.get("group_id", "?"))
    ids = [m.group(1) for key in listing.each(f"{root}samples/")
           if (m := re.fullmatch(re.escape(root) + r"samples/([^/]+)/meta\.json", key))]

    def row(sid: str) -> Row:
        folder = f"{root}samples/{sid}/"
        return Row(sid, (_present(listing, f"{folder}image.png"), _present(listing, f"{folder}target_image.jpg"),
                         _present(listing, f"{folder}ref_image.jpg")),
                   (("group", group_of.get(sid, "?")), ("split", split_of.get(sid, "not split"))), f"{folder}meta.json")

    tables = []
    summary = listing.json(f"{manifests}split_summary.json")
    if isinstance(summary, dict):
        counts, groups = summary.get("counts") or {}, summary.get("groups") or {}
        tables.append(Table("Split", ("split", "samples", "groups"),
                            tuple((s, str(counts.get(s, 0)), ", ".join(groups.get(s) or []) or "-")
                                  for s in ("train", "test")),
                            f"seed {summary.get('seed')}, train ratio asked {summary.get('train_ratio')}, "
                            f"made {summary.get('achieved_train_ratio')}; groups never straddle the split"))
    columns = ("render", "target", "reference")
    gallery = Gallery("Triplets", columns, Rows(ids, row), difix_facts,
                      "render: the degraded view DiFix learns to fix; target: the real image at that camera; "
                      "reference: another camera's image of the scene")
    quality = quality_section(listing, row, columns, difix_facts)
    return Section("DiFix triplets", tables=tuple(tables), galleries=(gallery,)), *((quality,) if quality else ())


# -- reference-object -----------------------------------------------------------------------------

def yolo_class_counts(labels: Mapping[str, bytes]) -> Counter[int]:
    """Objects per class id over YOLO label files (each line `class x1 y1 ...`)."""
    counts: Counter[int] = Counter()
    for data in labels.values():
        for line in data.decode("utf-8", "replace").splitlines():
            head = line.split(maxsplit=1)[:1]
            if head and head[0].isdigit():
                counts[int(head[0])] += 1
    return counts


def reference_object(listing: Listing) -> tuple[Section, ...]:
    yolo = listing.stage_prefix("annotation") or ""
    root = yolo[: -len("06_yolo_dataset/")] if yolo.endswith("06_yolo_dataset/") else yolo
    names_doc = listing.read(f"{yolo}classes.txt") if f"{yolo}classes.txt" in listing.keys else None
    names = [n.strip() for n in (names_doc or b"").decode("utf-8", "replace").splitlines() if n.strip()]
    perspectives = [k for k in listing.under(f"{root}02_perspectives/") if re.search(IMAGE, k)]
    reference = Row("reference", (_present(listing, f"{root}01_white_background.png"),
                                  *(Picture(k) for k in perspectives[:8])))
    views = Gallery("The reference and its perspectives",
                    ("reference", *(f"perspective {i + 1}" for i in range(len(perspectives[:8])))), (reference,),
                    note=f"{len(perspectives)} perspective(s)" + (", the first 8 shown" * (len(perspectives) > 8)))
    scenes = tuple(Row(k.rsplit("/", 1)[-1], (Picture(k),)) for k in listing.under(f"{root}04_dataset/")
                   if re.search(IMAGE, k))
    images: list[tuple[str, str, str, str | None]] = []  # (split, stem, image, label)
    for split in ("train", "val"):
        for key in listing.under(f"{yolo}{split}/images/"):
            if re.search(IMAGE, key):
                stem = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
                label_key = f"{yolo}{split}/labels/{stem}.txt"
                images.append((split, stem, key, label_key if label_key in listing.keys else None))
    read = listing.read_many([label for *_, label in images if label])  # every label: the class counts need them

    def class_name(i: int) -> str:
        return names[i] if i < len(names) else f"class {i}"

    per_split = Counter(split for split, *_ in images)
    counts_by_split = {split: yolo_class_counts({label: read.get(label, b"") for s, _, _, label in images
                                                 if s == split and label}) for split in ("train", "val")}
    rows = []
    for split, stem, key, label in images:
        objects = yolo_class_counts({"": read.get(label, b"")}) if label else Counter[int]()
        shown = ", ".join(f"{class_name(i)} {n}" for i, n in sorted(objects.items())) or "none"
        rows.append(Row(f"{split}/{stem}", (Picture(key, polygons=label),),
                        (("split", split), ("objects", shown if label else "no label file"))))
    ids = sorted(set(counts_by_split["train"]) | set(counts_by_split["val"]))
    label_of = {i: class_name(i) for i in ids}
    table = Table("Classes", ("class", "train objects", "val objects"),
                  tuple((label_of[i], str(counts_by_split["train"][i]), str(counts_by_split["val"][i])) for i in ids),
                  f"images: train {per_split['train']}, val {per_split['val']}")
    plots = (Plot("class-counts", "Objects per class", "bar",
                  tuple(Series(split, (), tuple(float(counts_by_split[split][i]) for i in ids))
                        for split in ("train", "val")), ylabel="objects", names=tuple(label_of[i] for i in ids)),
             ) if ids else ()
    section = Section("Reference-object dataset", tables=(table,), plots=plots, galleries=(
        views, Gallery("Generated scenes", ("scene",), scenes),
        Gallery("YOLO dataset", ("image and its labels",), tuple(rows),
                note="each label file's polygons drawn over its image, one colour per class")))
    by_stem = {r.sample.split("/", 1)[-1]: r for r in rows}  # the quality tables name images by their stem
    quality = quality_section(listing, lambda stem: by_stem.get(stem) or Row(stem, (None,)),
                              ("image and its labels",), None)
    return (section, quality) if quality else (section,)
