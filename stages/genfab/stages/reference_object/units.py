"""The units of reference-object's fan-out stages (`StageDecl.units`), and their names. Torch-free:
the executors import it to count shards.

- perspectives: one per view (`perspective_NN_<azimuth>__<elevation>`);
- scenes: every committed perspective x prompt x iteration, `perspective_<N>_prompt_<Q>_seed_<S>`
  (the lab's reference-object file names), `S` a random-looking seed drawn for that unit from the resource's `seed`
  (`scene_seed`: the lab's script renders each with a random seed; genfab's are reproducible);
- qwen-augmentation: `count` variants of every committed scene, `<scene>_aug_<K>`;
- annotation: the committed scenes, plus the committed variants when step 5 ran (the combined
  folder, as the seed says).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel

from genfab.api.pipelines.reference_object import PerspectivesSettings, QwenAugmentationSettings, ScenesSettings
from genfab.contract import StageConfig
from genfab.inventory import InventoryError, SampleRef, upstream_succeeded
from genfab.stages.reference_object.views import views
from genfab.storage.base import Storage

S = TypeVar("S", bound=BaseModel)
PERSPECTIVE_RE = re.compile(r"^perspective_(\d+)_")
SCENE_RE = re.compile(r"^perspective_(\d+)_prompt_(\d+)_seed_(\d+)$")
AUG_RE = re.compile(r"^(?P<scene>.+)_aug_(?P<k>\d+)$")


@dataclass(frozen=True)
class SceneUnit:
    perspective: int
    prompt: int
    seed: int

    @property
    def id(self) -> str:
        return f"perspective_{self.perspective}_prompt_{self.prompt}_seed_{self.seed}"

    @classmethod
    def parse(cls, unit_id: str) -> SceneUnit:
        m = SCENE_RE.match(unit_id)
        if m is None:
            raise ValueError(f"{unit_id!r} is not a scene id (perspective_<N>_prompt_<Q>_seed_<S>)")
        return cls(int(m[1]), int(m[2]), int(m[3]))


def perspective_index(perspective_id: str) -> int:
    m = PERSPECTIVE_RE.match(perspective_id)
    if m is None:
        raise ValueError(f"{perspective_id!r} is not a perspective id (perspective_NN_...)")
    return int(m[1])


def aug_id(scene_id: str, k: int) -> str:
    return f"{scene_id}_aug_{k}"


def is_augmented(unit_id: str) -> bool:
    return AUG_RE.match(unit_id) is not None


def _settings(cfg: StageConfig, model: type[S]) -> S:
    """The stage's settings from its mounted config. A custom stage in the built-in's place gets its
    own `config` keys merged in: only the settings' own fields are read here."""
    known = {f.alias or name for name, f in model.model_fields.items()}
    try:
        return model.model_validate({k: v for k, v in cfg.config.items() if k in known})
    except ValueError as exc:
        raise InventoryError(f"stage {cfg.stage!r}: its config does not validate: {exc}") from None


def perspective_units(cfg: StageConfig, open_fn: Callable[[str], Storage]) -> list[SampleRef]:
    s = _settings(cfg, PerspectivesSettings)
    return [SampleRef(v.id) for v in views(s.perspectives)]


PROMPTS_UNIT = "prompts"


def prompt_units(cfg: StageConfig, open_fn: Callable[[str], Storage]) -> list[SampleRef]:
    """Step 3 makes one conversation (every prompt at once, each turn sees the previous ones)."""
    return [SampleRef(PROMPTS_UNIT)]


def scene_seed(base: int, perspective: int, prompt: int, iteration: int, salt: int = 0) -> int:
    """One scene's seed: uniform over 63 bits, a function of the resource's `seed` and the unit alone, so
    a re-run draws the same and a neighbouring unit (the next iteration, another prompt or perspective)
    an unrelated one, never `seed + 1`; two units of a run share one with negligible probability
    (10,000 units: about 1e-11)."""
    text = f"{base}:scene:{perspective}:{prompt}:{iteration}" + (f":{salt}" if salt else "")
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def scene_units_of(perspectives: set[str], prompts: int, iterations: int, seed: int) -> list[SceneUnit]:
    """Every committed perspective x prompt x iteration, in (perspective, prompt, iteration) order, each
    with its `scene_seed`; the iterations of one perspective x prompt never share a seed (their ids
    would clash: a repeat draws again with a salt). A retry's seed is `retry_seed`'s, derived from it."""
    units = []
    for p in sorted(perspective_index(x) for x in perspectives):
        for q in range(prompts):
            used: set[int] = set()
            for i in range(iterations):
                salt = 0
                while (drawn := scene_seed(seed, p, q, i, salt)) in used:
                    salt += 1
                used.add(drawn)
                units.append(SceneUnit(p, q, drawn))
    return units


def scene_units(cfg: StageConfig, open_fn: Callable[[str], Storage]) -> list[SampleRef]:
    s = _settings(cfg, ScenesSettings)
    done = upstream_succeeded(cfg, open_fn, "perspectives")
    units = scene_units_of(done, s.num_prompts, s.num_iterations, s.seed)
    return sorted((SampleRef(u.id) for u in units), key=lambda r: r.id)


def augmentation_units(cfg: StageConfig, open_fn: Callable[[str], Storage]) -> list[SampleRef]:
    s = _settings(cfg, QwenAugmentationSettings)
    scenes = upstream_succeeded(cfg, open_fn, "scenes")
    return [SampleRef(aug_id(sid, k)) for sid in sorted(scenes) for k in range(s.qwen_augmentation.count)]


def annotation_units(cfg: StageConfig, open_fn: Callable[[str], Storage]) -> list[SampleRef]:
    ids = set(upstream_succeeded(cfg, open_fn, "scenes"))
    if any(u.name == "qwen-augmentation" for u in cfg.upstream):
        ids |= upstream_succeeded(cfg, open_fn, "qwen-augmentation")
    return [SampleRef(i) for i in sorted(ids)]
