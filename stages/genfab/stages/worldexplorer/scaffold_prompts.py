"""The cardinal views' prompts (scaffold_gen), as WorldExplorer's `scaffold_generation.py` writes them.

- `customPrompts` (four, for 000/002/004/006) get WorldExplorer's eye-level phrase appended, as its
  custom mode does;
- a `theme` fills WorldExplorer's four room templates ("kitchen of a {theme}", ...);
- otherwise the sample's prompt from the curated set's `metadata.json` (the lab's worldexplorer: "prompts from the
  dataset JSON"), with the eye-level phrase, for every cardinal view (each view has its own seed).

A sample's own `scaffold` fields in `metadata.json` come first: `scaffold.prompts` gives single
views their prompt (`{"002": ..., "004": ..., "006": ...}`, with the eye-level phrase, as custom
prompts get it), and `scaffold.theme` its own theme; views it leaves out follow the order above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from genfab.stages.worldexplorer.scaffold_geometry import CARDINAL

EYE_LEVEL = "with the horizon line centered, shot from an eye-level, straight-on camera, with no tilt"
THEME_ROOMS = ("kitchen of a {theme}", "office of a {theme}", "bedroom of a {theme}", "living room of a {theme}")


class NoPrompt(ValueError):
    """Neither `customPrompts`, a `theme` nor the sample's own prompt: nothing to generate from."""


def cardinal_prompts(custom: Sequence[str] | None, theme: str | None, sample_prompt: str | None,
                     view_prompts: Mapping[int, str] | None = None, sample_theme: str | None = None
                     ) -> dict[int, str]:
    """The prompt of each cardinal view (000, 002, 004, 006): the sample's own per-view prompts
    first, then the scaffold's custom prompts, the sample's theme, the scaffold's theme, the sample's
    prompt."""
    given = {v: f"{text.strip()}, {EYE_LEVEL}" for v, text in (view_prompts or {}).items() if text.strip()}
    if len(given) == len(CARDINAL):
        return {v: given[v] for v in CARDINAL}
    if custom:
        texts = [f"{text}, {EYE_LEVEL}" for text in custom]
    elif sample_theme or theme:
        texts = [room.format(theme=sample_theme or theme) for room in THEME_ROOMS]
    elif sample_prompt and sample_prompt.strip():
        texts = [f"{sample_prompt.strip()}, {EYE_LEVEL}"] * len(CARDINAL)
    else:
        missing = ", ".join(f"{v:03d}" for v in CARDINAL if v not in given)
        raise NoPrompt(f"no prompt for the cardinal view(s) {missing}: set worldexplorer.scaffold.theme or "
                       "customPrompts, or give the sample a `prompt` (or `scaffold.prompts`) in metadata.json")
    return {v: given.get(v, text) for v, text in zip(CARDINAL, texts, strict=True)}
