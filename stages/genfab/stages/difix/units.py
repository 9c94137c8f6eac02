"""The difix export's units: one per source scene, named as in sample ids (`hi4d_pair00_dance`), from
storage listings only (the executors count them to shard the export; torch- and numpy-free)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genfab.api.difix import DifixSource
from genfab.contract import StageConfig
from genfab.contract.paths import SAMPLE_ID_RE
from genfab.inventory import InventoryError, SampleRef
from genfab.stages.difix.layouts import SceneRef, SourceError, layout_for
from genfab.storage.base import Storage, StorageError


@dataclass(frozen=True)
class SourceScene:
    source: DifixSource
    scene: SceneRef


def export_sources(cfg: StageConfig) -> list[DifixSource]:
    raw = cfg.config.get("sources")
    if not isinstance(raw, list) or not raw:
        raise InventoryError(f"stage {cfg.stage!r}: config.sources must list the difix sources")
    return [DifixSource.model_validate(s) for s in raw]


def wanted(scene: SceneRef, source_name: str, picked: tuple[str, ...]) -> bool:
    """Whether `sources[].scenes` names the scene (as in sample ids, or without the source prefix)."""
    return any(scene.name in (p, f"{source_name}_{p}") for p in picked)


def source_scenes(cfg: StageConfig, open_fn: Callable[[str], Storage]) -> list[SourceScene]:
    """Every selected scene of every source, sorted by scene name; scene names must be unique."""
    within = cfg.selection.within or {}
    found: dict[str, SourceScene] = {}
    for source in export_sources(cfg):
        storage = open_fn(source.uri)
        try:
            scenes = layout_for(source.dataset).scenes(storage, source.name)
        except SourceError as exc:
            raise InventoryError(f"sources[{source.name}]: {exc}") from None
        except StorageError as exc:
            raise InventoryError(f"sources[{source.name}]: {source.uri}: {exc}") from None
        if not scenes:
            raise InventoryError(f"sources[{source.name}]: no {source.dataset} scene under {source.uri} (see the "
                                 "difix source layout in docs/pipelines/difix-data.md)")
        picked = within.get(source.name)
        if picked is not None:
            missing = [p for p in picked if not any(wanted(s, source.name, (p,)) for s in scenes)]
            if missing:
                raise InventoryError(f"sources[{source.name}].scenes: no scene {', '.join(missing)} under "
                                     f"{source.uri} (scenes: {', '.join(s.name for s in scenes[:8])}"
                                     f"{' ...' if len(scenes) > 8 else ''})")
            scenes = [s for s in scenes if wanted(s, source.name, picked)]
        for scene in scenes:
            if not SAMPLE_ID_RE.match(scene.name):
                raise InventoryError(f"sources[{source.name}]: scene {scene.key!r} gives the name {scene.name!r}, "
                                     f"which is not a valid sample id ({SAMPLE_ID_RE.pattern}); rename the folder")
            if scene.name in found:
                raise InventoryError(f"scene name {scene.name!r} comes from sources {found[scene.name].source.name} "
                                     f"and {source.name}; rename a source")
            found[scene.name] = SourceScene(source, scene)
    return [found[k] for k in sorted(found)]


def scene_units(cfg: StageConfig, open_fn: Callable[[str], Storage]) -> list[SampleRef]:
    """`StageDecl.units` of the export: unit id = scene name, source = `<source name>/<scene folder>`."""
    return [SampleRef(s.scene.name, f"{s.source.name}/{s.scene.key}") for s in source_scenes(cfg, open_fn)]
