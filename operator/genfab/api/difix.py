"""DatasetJob type `difix` (the lab's DiFix scripts): DiFix triplet export, leak-free split, trainer adapter."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from genfab.api.base import GenfabModel, Rule
from genfab.api.quality import DIFIX_TRIPLET, QualityBound, quality_range_rule, quality_rule
from genfab.api.types import InputUri, SampleId

GroupBy = Literal["pair", "scene", "pattern"]
ImageFormat = Literal["jpg", "png"]
SKIP_RE = r"^([A-Za-z0-9][A-Za-z0-9._-]{0,127}:)?[A-Za-z0-9._-]{1,64}$"
"""A skip-list entry: a frame id, optionally after `<scene>:`."""


class DifixSource(GenfabModel):
    """One source dataset of posed multi-camera captures with renders to refine."""

    rules = (
        Rule(
            "!has(self.groupBy) || self.groupBy != 'pattern' || has(self.groupPattern)",
            "groupBy pattern needs `groupPattern`",
            "groupPattern",
            lambda m: m.group_by != "pattern" or m.group_pattern is not None,
        ),
        Rule(
            "self.dataset != 'hi4d' || self.renders != 'folder' || has(self.rendersUri)",
            "dataset hi4d with renders folder needs `rendersUri` (HI4D's published layout has no renders)",
            "rendersUri",
            lambda m: m.dataset != "hi4d" or m.renders != "folder" or m.renders_uri is not None,
        ),
    )

    name: SampleId
    """Source name (prefix of sample ids)."""
    dataset: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    """Dataset kind, e.g. `hi4d`; selects the loader and the default `groupBy`."""
    uri: InputUri
    """Root of the source (scenes with cameras, frames, renders)."""
    scenes: list[SampleId] | None = Field(None, min_length=1, max_length=10000)
    """Only these scenes (names as in sample ids, `hi4d_pair00_dance`, or without the source prefix);
    unset = all scenes under `uri`. It picks scenes and is not hashed: adding one exports only it."""
    target_cameras: list[int] | None = Field(None, min_length=1, max_length=256)
    """Target camera ids; unset = all cameras."""
    frame_stride: int = Field(1, ge=1, le=10000)
    """Take every N-th frame."""
    group_by: GroupBy | None = None
    """The `group_id` rule: pair (HI4D: `group_id = pair_id`, e.g. pair00), scene (`group_id =
    scene_name`, datasets where each scene has different people) or pattern (`groupPattern`).
    Unset: pair for hi4d, scene otherwise."""
    group_pattern: str | None = Field(None, max_length=256)
    """Regular expression applied to the scene name; its first group is the `group_id`."""
    renders: Literal["folder", "ply"] = "folder"
    """Where the imperfect renders (`image.png`) come from: folder (what the lab's reconstruction
    pipeline already wrote: `<cam>/<frame>.png`) or ply (rendered here from 3DGS PLY files at the
    target cameras with the gaussians stage's renderer; needs a CUDA GPU): `<frame>.ply` per frame, or
    one `scene.ply` for every frame."""
    renders_uri: InputUri | None = None
    """Root of the renders or PLY files, one folder per scene name (`<rendersUri>/<scene name>/`);
    unset: inside each scene (`renders/`, or `splats/` for ply)."""
    skip_frames: list[Annotated[str, Field(pattern=SKIP_RE, max_length=200)]] | None = Field(None, max_length=100000)
    """Frames never exported (as target or reference): `000123` in every scene, `<scene>:000123` in one
    scene (a scene name as in sample ids, or without the source prefix); numeric ids match by value
    (`5` = `000005`). Each scene's own `skip_frames.csv` (the lab's format) is honoured too."""
    min_mask_fraction: float = Field(0.0, ge=0.0, le=1.0)
    """Keep a sample only if the subject masks of its target and reference frames each cover at least
    this fraction of the image (masks from `masks/<cam>/<frame>.png` or `seg/img_seg_mask/<cam>/all/`);
    0 = masks are not needed."""

    def effective_group_by(self) -> GroupBy:
        if self.group_by is not None:
            return self.group_by
        return "pair" if self.dataset == "hi4d" else "scene"


class SplitConfig(GenfabModel):
    """Train/test split of `manifests/all_samples.jsonl`; a group never spans both sides."""

    train_ratio: float = Field(0.9, gt=0.0, lt=1.0)
    """Target fraction of groups' samples in train."""
    seed: int = Field(42, ge=0)
    """Seed of the group shuffle."""
    test_groups: list[SampleId] | None = Field(None, min_length=1, max_length=10000)
    """Groups always on the test side (held-out evaluation scenes or pairs, as in the lab's study);
    the others are split by `trainRatio` of all samples."""


class ReferenceViewConfig(GenfabModel):
    """How `ref_image` is chosen for a target view."""

    strategy: Literal["fixed-camera", "nearest-camera", "random-camera"] = "nearest-camera"
    """fixed-camera (`referenceCamId`), the nearest other camera by pose, or a random other camera."""
    reference_cam_id: int | None = Field(None, ge=0)
    """Reference camera for fixed-camera."""
    frame_offset: int = Field(0, ge=-10000, le=10000)
    """Reference frame = target frame + offset (`reference_fname` may differ from `target_fname`)."""
    seed: int = Field(0, ge=0)
    """Seed of random-camera (with the scene, target camera and frame: the same choice in every run)."""


class DifixConfig(GenfabModel):
    """The lab's DiFix scripts' DiFix data generation experiment."""

    rules = (
        Rule(
            "self.referenceView.strategy != 'fixed-camera' || has(self.referenceView.referenceCamId)",
            "referenceView.strategy fixed-camera needs `referenceView.referenceCamId`",
            "referenceView",
            lambda m: m.reference_view.strategy != "fixed-camera" or m.reference_view.reference_cam_id is not None,
        ),
        Rule(
            "self.sources.all(s, self.sources.exists_one(t, t.name == s.name))",
            "source names must be unique",
            "sources",
            lambda m: len({s.name for s in m.sources}) == len(m.sources),
        ),
        quality_rule(DIFIX_TRIPLET),
        quality_range_rule(DIFIX_TRIPLET),
    )

    sources: list[DifixSource] = Field(min_length=1, max_length=32)
    """Source datasets."""
    split: SplitConfig = Field(default_factory=SplitConfig)
    """Leak-free split."""
    reference_view: ReferenceViewConfig = Field(default_factory=ReferenceViewConfig)
    """Reference-view strategy."""
    prompt: str = Field("remove degradation", max_length=1024)
    """Prompt written to every `difix/data.json` entry."""
    paths: Literal["absolute", "prefix", "relative"] = "prefix"
    """How `difix/data.json` names the images (Difix3D's dataset opens them as written): absolute (the
    output's own local path: `file://` outputs, shared file systems), prefix (`pathPrefix` + the path
    inside the experiment: where training Pods mount the output; the TuningRun stages the data there)
    or relative (to the experiment root)."""
    path_prefix: str = Field("/data", pattern=r"^/([^/]+(/[^/]+)*)?$", max_length=512)
    """The experiment root as training Pods see it (`paths: prefix`)."""
    image_format: ImageFormat = "jpg"
    """Format of `target_image` and `ref_image` (`image.png` is always PNG)."""
    quality: dict[str, QualityBound] = Field(default_factory=dict, max_length=32)
    """Bounds on the triplets' quality figures (`renderPsnr`, `renderDark`, ...: the figures and what each
    measures are in the difix data pipeline's docs), by figure name. The `adapter` stage leaves a triplet
    outside a bound out of `difix/data.json` and lists it in `meta/dropped_samples.csv` with
    `QualityOutOfRange` (figure, value, bound); only its config covers the bounds, so changing them
    re-filters without exporting again. Figures it does not name keep their default bound (the figures
    table's "default" column); naming one with neither `min` nor `max` lifts it."""
