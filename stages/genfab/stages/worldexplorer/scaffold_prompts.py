"""The cardinal views' prompts (scaffold_gen), as WorldExplorer's `scaffold_generation.py` writes them.

- `customPrompts` (four, for 000/002/004/006) get WorldExplorer's eye-level phrase appended, as its
  custom mode does;
- a `theme` fills WorldExplorer's four room templates ("kitchen of a {theme}", ...);
- otherwise the sample's prompt from the curated set's `metadata.json` (seed 000: "prompts from the
  dataset JSON"), with the eye-level phrase, for every cardinal view (each view has its own seed).
"""

from __future__ import annotations

from collections.abc import Sequence

from genfab.stages.worldexplorer.scaffold_geometry import CARDINAL

EYE_LEVEL = "with the horizon line centered, shot from an eye-level, straight-on camera, with no tilt"
THEME_ROOMS = ("kitchen of a {theme}", "office of a {theme}", "bedroom of a {theme}", "living room of a {theme}")


class NoPrompt(ValueError):
    """Neither `customPrompts`, a `theme` nor the sample's own prompt: nothing to generate from."""


def cardinal_prompts(custom: Sequence[str] | None, theme: str | None, sample_prompt: str | None
                     ) -> dict[int, str]:
    """The prompt of each cardinal view (000, 002, 004, 006)."""
    if custom:
        texts = [f"{text}, {EYE_LEVEL}" for text in custom]
    elif theme:
        texts = [room.format(theme=theme) for room in THEME_ROOMS]
    elif sample_prompt and sample_prompt.strip():
        texts = [f"{sample_prompt.strip()}, {EYE_LEVEL}"] * len(CARDINAL)
    else:
        raise NoPrompt("no prompt for the cardinal views: set worldexplorer.scaffold.theme or customPrompts, or give "
                       "the sample a `prompt` in metadata.json")
    return dict(zip(CARDINAL, texts, strict=True))
