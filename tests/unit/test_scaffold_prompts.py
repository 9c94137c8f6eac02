"""The cardinal views' prompts (scaffold_gen): the sample's own `scaffold` fields of the lab's worldexplorer
`metadata.json` first, then the scaffold's settings, then the sample's prompt."""

from __future__ import annotations

import pytest

from genfab.stages.worldexplorer.scaffold_prompts import EYE_LEVEL, NoPrompt, cardinal_prompts

E = f", {EYE_LEVEL}"
CUSTOM = ["a", "b", "c", "d"]

TABLE = [
    ("the sample's prompt for every view", None, None, "a cabin", None, None,
     ["a cabin" + E] * 4),
    ("the scaffold's theme over the sample's prompt", None, "farmhouse", "a cabin", None, None,
     ["kitchen of a farmhouse", "office of a farmhouse", "bedroom of a farmhouse", "living room of a farmhouse"]),
    ("the sample's theme over the scaffold's", None, "farmhouse", None, None, "castle",
     ["kitchen of a castle", "office of a castle", "bedroom of a castle", "living room of a castle"]),
    ("custom prompts over every theme", CUSTOM, "farmhouse", "a cabin", None, "castle",
     [t + E for t in CUSTOM]),
    ("per-view prompts replace only their views", CUSTOM, None, None, {2: "north wall", 6: "south wall"}, None,
     ["a" + E, "north wall" + E, "c" + E, "south wall" + E]),
    ("per-view prompts over the sample's prompt", None, None, "a cabin", {4: "the fireplace"}, None,
     ["a cabin" + E, "a cabin" + E, "the fireplace" + E, "a cabin" + E]),
    ("all four views given: nothing else needed", None, None, None, {0: "w", 2: "x", 4: "y", 6: "z"}, None,
     [t + E for t in "wxyz"]),
]


@pytest.mark.parametrize(("label", "custom", "theme", "prompt", "views", "sample_theme", "expected"), TABLE,
                         ids=[r[0] for r in TABLE])
def test_cardinal_prompts(label: str, custom: list[str] | None, theme: str | None, prompt: str | None,
                          views: dict[int, str] | None, sample_theme: str | None, expected: list[str]) -> None:
    assert list(cardinal_prompts(custom, theme, prompt, views, sample_theme).values()) == expected


def test_views_left_without_a_prompt_are_named() -> None:
    with pytest.raises(NoPrompt, match="cardinal view\\(s\\) 000, 004, 006"):
        cardinal_prompts(None, None, "  ", {2: "north wall"})


def test_the_manifest_takes_per_view_prompts_and_a_theme() -> None:
    from pydantic import ValidationError

    from genfab.api.scenejob import CuratedManifest

    manifest = CuratedManifest.model_validate({"samples": [{"index": 3, "prompt": "a cabin", "scaffold": {
        "prompts": {"002": "north wall"}, "theme": "castle", "input_image": "images/index_0003.png"}}]})
    hints = manifest.samples[0].scaffold
    assert hints is not None and hints.prompts == {"002": "north wall"} and hints.theme == "castle"
    with pytest.raises(ValidationError, match="prompts"):
        CuratedManifest.model_validate({"samples": [{"scaffold": {"prompts": {"003": "a gap view"}}}]})
