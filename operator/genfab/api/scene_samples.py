"""The lab's worldexplorer script's sample expansion: which (index, variant, image) jobs a curated_set produces.

`get_variants_for_sample` of `run_batch_pipeline.py`: every variant (photorealistic, stylized) with
an `original_path` or `path`; when a sample has none, the fallback input image (`scaffold.input_image`,
then `images/index_XXXX.png`) becomes variant `default`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from genfab.api.scenejob import CuratedSample, VariantPaths


@dataclass(frozen=True)
class SceneSample:
    index: int
    variant: str
    image_path: str
    """Relative to the dataset root (or the absolute input URI for a single image)."""

    @property
    def sample_id(self) -> str:
        return f"{self.variant}/index_{self.index:04d}"


def _variant_path(paths: VariantPaths | None) -> str | None:
    if paths is None:
        return None
    return paths.original_path or paths.path


def fallback_image(sample: CuratedSample, index: int, exists: Callable[[str], bool]) -> str | None:
    """`scaffold.input_image`, then the `images/index_XXXX.png` convention."""
    candidates = []
    if sample.scaffold is not None and sample.scaffold.input_image:
        candidates.append(sample.scaffold.input_image)
    candidates.append(f"images/index_{index:04d}.png")
    return next((c for c in candidates if exists(c)), None)


def expand_samples(
    samples: Sequence[CuratedSample],
    *,
    indices: Sequence[int] | None = None,
    variants: Sequence[str] | None = None,
    exists: Callable[[str], bool] = lambda _: True,
) -> list[SceneSample]:
    """All jobs of a curated set, filtered by `indices` and `variants`, in (index, variant) order.

    `exists` answers whether a dataset-relative path exists (I/O at the edge; the default assumes
    it does, which is what planning without a listing needs).
    """
    wanted = set(indices) if indices is not None else None
    allowed = set(variants) if variants is not None else None
    jobs: list[SceneSample] = []
    for position, sample in enumerate(samples):
        index = sample.index if sample.index is not None else position
        if wanted is not None and index not in wanted:
            continue
        found = [
            (name, path)
            for name, path in (
                ("photorealistic", _variant_path(sample.photorealistic)),
                ("stylized", _variant_path(sample.stylized)),
            )
            if path is not None and exists(path)
        ]
        if not found:
            fallback = fallback_image(sample, index, exists)
            found = [("default", fallback)] if fallback else []
        jobs.extend(
            SceneSample(index, name, path) for name, path in found if allowed is None or name in allowed
        )
    return jobs


NO_JOBS_HINT = (
    "no jobs to run: each sample needs photorealistic.original_path/path or stylized.original_path/path "
    "pointing to an existing file, or a fallback image (scaffold.input_image, images/index_XXXX.png)"
)
SHOWN = 5
"""Samples explained one by one in the no-jobs error; the rest are counted."""


def looked_for(sample: CuratedSample, index: int, exists: Callable[[str], bool],
               variants: Sequence[str] | None = None) -> str:
    """What one sample offered and why it gave no job, e.g. `index 3: photorealistic 'a.png' not found;
    stylized: no original_path/path; fallback 'images/index_0003.png' not found`."""
    parts, present = [], False
    for name, paths in (("photorealistic", sample.photorealistic), ("stylized", sample.stylized)):
        path = _variant_path(paths)
        if path is None:
            parts.append(f"{name}: no original_path/path")
        elif not exists(path):
            parts.append(f"{name} {path!r} not found")
        else:
            present = True
            parts.append(f"{name} {path!r} not in variants {list(variants or [])}")
    if present:  # the fallback only stands in for a sample without variant images
        return f"index {index}: " + "; ".join(parts)
    fallbacks = [sample.scaffold.input_image] if sample.scaffold is not None and sample.scaffold.input_image else []
    fallbacks.append(f"images/index_{index:04d}.png")
    found = fallback_image(sample, index, exists)
    if found is None:
        parts.append("fallback " + " or ".join(repr(c) for c in fallbacks) + " not found")
    else:
        parts.append(f"fallback {found!r} (variant default) not in variants {list(variants or [])}")
    return f"index {index}: " + "; ".join(parts)


def no_jobs_message(samples: Sequence[CuratedSample], *, indices: Sequence[int] | None = None,
                    variants: Sequence[str] | None = None, exists: Callable[[str], bool] = lambda _: True) -> str:
    """The error when `expand_samples` finds nothing: what was looked for, per sample."""
    numbered = [(s.index if s.index is not None else i, s) for i, s in enumerate(samples)]
    if indices is not None:
        numbered = [(i, s) for i, s in numbered if i in set(indices)]
        if not numbered:
            return (f"no jobs to run: indices {sorted(set(indices))[:SHOWN]} match no sample of the curated set "
                    f"({len(samples)} samples)")
    lines = [looked_for(s, i, exists, variants) for i, s in numbered[:SHOWN]]
    more = f"; and {len(numbered) - SHOWN} more samples" if len(numbered) > SHOWN else ""
    return f"{NO_JOBS_HINT}. Looked for: " + " | ".join(lines) + more
