"""Where a difix source keeps its scenes, cameras, frames, renders and masks: one `SourceLayout` per
`dataset` kind, found from storage listings alone (no numpy, no image decoding), so the executors
can count the export's units (one per scene) with the same code the stage Pods use.

Built in:
- `generic`: `<uri>/<scene>/` with a camera file (`cameras.json`, `transforms.json` or a COLMAP model
  in `sparse/0/` or `sparse/`), `images/<cam>/<frame>.{jpg,png}` (ground truth), optional
  `renders/<cam>/<frame>.{png,jpg}`, optional masks `masks/<cam>/<frame>.png` (or the lab's
  `seg/img_seg_mask/<cam>/all/<frame>.png`) and `skip_frames.csv`.
- `hi4d`: HI4D's published layout, `<uri>/pairXX/<action>XX/` with `cameras/rgb_cameras.npz`,
  `images/<cam>/<frame>.jpg` and `seg/img_seg_mask/<cam>/all/<frame>.png`; renders come from
  `rendersUri` (the published data has none). Scene names follow the lab's: `<source>_pair00_dance`.

Other kinds plug in through the entry-point group `genfab.difix_sources` (a `SourceLayout` class).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import ClassVar, Protocol

from genfab.storage.base import Storage

ENTRY_POINT_GROUP = "genfab.difix_sources"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CAMERA_FILES = ("cameras.json", "transforms.json", "sparse/0/cameras.bin", "sparse/0/cameras.txt",
                "sparse/cameras.bin", "sparse/cameras.txt")
"""The generic layout's camera files, in the order they are preferred."""
FrameKey = tuple[int, str]
"""(camera id, frame id)."""


class SourceError(ValueError):
    """A source or scene that cannot be read as its layout says: which URI or file, what is wrong."""


@dataclass(frozen=True)
class SceneRef:
    key: str
    """The scene's folder under the source URI (`pair00_dance`, `pair00/dance00`)."""
    name: str
    """The scene name used in sample ids (`hi4d_pair00_dance`)."""


@dataclass
class SceneFiles:
    """One scene's files, from one listing: keys relative to the source URI (renders: to `renders_root`)."""

    scene: SceneRef
    cameras_key: str
    images: dict[FrameKey, str] = field(default_factory=dict)
    masks: dict[FrameKey, str] = field(default_factory=dict)
    renders: dict[FrameKey, str] = field(default_factory=dict)
    plys: dict[str, str] = field(default_factory=dict)
    """Frame id -> PLY key (`*` for one PLY for every frame)."""
    skip_key: str | None = None

    @property
    def camera_ids(self) -> list[int]:
        return sorted({cam for cam, _ in self.images})

    @property
    def frames(self) -> list[str]:
        return sorted({frame for _, frame in self.images}, key=frame_order)


def frame_order(frame: str) -> tuple[int, int, str]:
    """Frame ids sort by number when numeric (`9` before `10`), else by name."""
    return (0, int(frame), frame) if frame.isdigit() else (1, 0, frame)


def _split_image(rel: str) -> tuple[int, str] | None:
    """`<cam>/<frame>.<ext>` -> (cam, frame) when cam is an integer id and ext an image suffix."""
    cam, sep, name = rel.partition("/")
    stem, dot, ext = name.rpartition(".")
    if not sep or "/" in name or not dot or f".{ext.lower()}" not in IMAGE_SUFFIXES or not cam.isdigit() or not stem:
        return None
    return int(cam), stem


def index_files(keys: Iterable[str], scene: SceneRef, cameras_key: str, images: str, masks: tuple[str, ...],
                renders: str | None, plys: str | None, skip_key: str | None) -> SceneFiles:
    """A scene's files from the keys under the scene folder (relative to it). `images`, `masks`
    (candidates, first match wins), `renders` and `plys` are folders relative to the scene; `masks`
    entries may hold `{cam}` for layouts with the camera in the middle (`seg/img_seg_mask/{cam}/all`)."""
    found = SceneFiles(scene, cameras_key, skip_key=skip_key)
    mask_res = [re.compile("^" + re.escape(m.rstrip("/")).replace(re.escape("{cam}"), r"(\d+)") + "/")
                for m in masks]
    for key in keys:
        if key.startswith(images.rstrip("/") + "/"):
            split = _split_image(key[len(images.rstrip("/")) + 1:])
            if split is not None:
                found.images.setdefault(split, key)
            continue
        if renders is not None and key.startswith(renders.rstrip("/") + "/"):
            split = _split_image(key[len(renders.rstrip("/")) + 1:])
            if split is not None:
                found.renders.setdefault(split, key)
            continue
        if plys is not None and key.startswith(plys.rstrip("/") + "/") and key.endswith(".ply"):
            stem = key[len(plys.rstrip("/")) + 1:-4]
            if "/" not in stem:
                found.plys["*" if stem == "scene" else stem] = key
            continue
        for mask, pattern in zip(masks, mask_res, strict=True):
            matched = pattern.match(key)
            if matched is None:
                continue
            rest = key[matched.end():]
            split = (int(matched.group(1)), rest.rpartition(".")[0]) if "{cam}" in mask and "/" not in rest \
                and rest.lower().endswith(".png") else (_split_image(rest) if "{cam}" not in mask else None)
            if split is not None:
                found.masks.setdefault(split, key)
            break
    return found


def _listing(storage: Storage, prefix: str = "") -> list[str]:
    return sorted(obj.key for obj in storage.list(prefix))


class SourceLayout(Protocol):
    dataset: ClassVar[str]

    def scenes(self, storage: Storage, source_name: str) -> list[SceneRef]:
        """Every scene under the source, sorted by name."""
        ...

    def files(self, storage: Storage, scene: SceneRef, renders: Storage | None, ply: bool) -> SceneFiles:
        """The scene's files. `renders`: the `rendersUri` storage (its `<scene name>/` folder holds this
        scene's renders or PLYs), None for the scene's own `renders/` or `splats/`."""
        ...


class GenericLayout:
    dataset: ClassVar[str] = "generic"
    masks: ClassVar[tuple[str, ...]] = ("masks", "seg/img_seg_mask/{cam}/all")

    def scene_name(self, source_name: str, folder: str) -> str:
        return f"{source_name}_{folder}"

    def scenes(self, storage: Storage, source_name: str) -> list[SceneRef]:
        found: dict[str, SceneRef] = {}
        for key in _listing(storage):
            folder, sep, rest = key.partition("/")
            if sep and rest in CAMERA_FILES and folder not in found:
                found[folder] = SceneRef(folder, self.scene_name(source_name, folder))
        return sorted(found.values(), key=lambda s: s.name)

    def cameras_key(self, keys: list[str], scene: SceneRef) -> str:
        present = set(keys)
        for name in CAMERA_FILES:
            if name in present:
                return name
        raise SourceError(f"scene {scene.key}: no camera file (looked for {', '.join(CAMERA_FILES)})")

    def files(self, storage: Storage, scene: SceneRef, renders: Storage | None, ply: bool) -> SceneFiles:
        prefix = f"{scene.key}/"
        keys = [k[len(prefix):] for k in _listing(storage, prefix)]
        own = renders is None  # the scene's own renders/ or splats/
        found = index_files(keys, scene, self.cameras_key(keys, scene), "images", self.masks,
                            "renders" if own and not ply else None, "splats" if own and ply else None,
                            "skip_frames.csv" if "skip_frames.csv" in keys else None)
        if renders is not None:
            external = index_files([f"r/{k}" for k in _listing(renders, f"{scene.name}/")], scene, "", "-", (),
                                   None if ply else f"r/{scene.name}", f"r/{scene.name}" if ply else None, None)
            found.renders = {fk: k[2:] for fk, k in external.renders.items()}
            found.plys = {fk: k[2:] for fk, k in external.plys.items()}
        return found


HI4D_ACTION = re.compile(r"^(?P<action>.*?)(?P<number>\d*)$")


class Hi4dLayout(GenericLayout):
    """HI4D: `pairXX/<action>XX/`; the lab names the scene `<source>_pairXX_<action>` (the action's
    number dropped when it repeats the pair's: `pair17/dance17` -> `hi4d_pair17_dance`)."""

    dataset: ClassVar[str] = "hi4d"
    masks: ClassVar[tuple[str, ...]] = ("seg/img_seg_mask/{cam}/all",)
    CAMERAS: ClassVar[str] = "cameras/rgb_cameras.npz"

    def scene_name(self, source_name: str, folder: str) -> str:
        pair, _, action = folder.partition("/")
        parts = HI4D_ACTION.match(action)
        assert parts is not None
        name = parts["action"] if parts["number"] and parts["number"] == pair.removeprefix("pair") else action
        return f"{source_name}_{pair}_{name or action}"

    def scenes(self, storage: Storage, source_name: str) -> list[SceneRef]:
        found: dict[str, SceneRef] = {}
        for key in _listing(storage):
            parts = key.split("/")
            if len(parts) == 4 and "/".join(parts[2:]) == self.CAMERAS and parts[0].startswith("pair"):
                folder = "/".join(parts[:2])
                found[folder] = SceneRef(folder, self.scene_name(source_name, folder))
        return sorted(found.values(), key=lambda s: s.name)

    def cameras_key(self, keys: list[str], scene: SceneRef) -> str:
        if self.CAMERAS not in keys:
            raise SourceError(f"scene {scene.key}: no {self.CAMERAS} (HI4D's camera file)")
        return self.CAMERAS


BUILTIN: dict[str, type[GenericLayout]] = {"generic": GenericLayout, "hi4d": Hi4dLayout}


def layout_for(dataset: str) -> SourceLayout:
    """The layout of a `dataset` kind: built in, else the plug-in registered under that name."""
    if dataset in BUILTIN:
        return BUILTIN[dataset]()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == dataset:
            layout: SourceLayout = ep.load()()
            return layout
    installed = sorted({*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
    raise SourceError(f"dataset {dataset!r} has no loader (installed: {', '.join(installed)}); a new kind plugs in "
                      f"as a SourceLayout under the entry-point group {ENTRY_POINT_GROUP!r}, installed in the "
                      "stage image and the operator's")
