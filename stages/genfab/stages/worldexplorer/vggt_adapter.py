"""VGGT (Visual Geometry Grounded Transformer, Meta) behind one narrow call: given a sequence of
images, per-pixel world points, their confidence and colours, and every image's camera.

VGGT is research code installed from its repository at a pinned commit by `images/vggt/Dockerfile`;
this module imports it at run time as its README does (`VGGT.from_pretrained`,
`load_and_preprocess_images`, the forward pass under bf16 autocast, `pose_encoding_to_extri_intri`,
`unproject_depth_map_to_point_map`: points from the depth head and the cameras, which VGGT's authors
report as more accurate than the point head). Its world frame is the first image's camera with its
own scale: `to_scene` moves the points into the scene's frame by the similarity between VGGT's
camera centres and the known ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genfab.stages.models.placement import Placement
from genfab.stages.models.research import import_research, provenance
from genfab.stages.worldexplorer.research import similarity


@dataclass(frozen=True)
class Geometry:
    points: np.ndarray
    """(S, H, W, 3) world points in VGGT's frame."""
    confidence: np.ndarray
    """(S, H, W) depth confidence."""
    colors: np.ndarray
    """(S, H, W, 3) in [0, 1]: the images as VGGT saw them."""
    cam_T_world: np.ndarray
    """(S, 4, 4) VGGT's cameras (OpenCV world-to-camera)."""
    K: np.ndarray
    """(S, 3, 3) VGGT's intrinsics in pixels of the images it saw (518 wide, `load_and_preprocess_images`):
    `K @ (cam_T_world @ point)` lands on the point's own pixel (column, row), the check of the gpu tier."""


def degenerate_frames(K: np.ndarray) -> np.ndarray:
    """(S,) True where VGGT's intrinsics for a frame are unusable: a focal length that is not finite and
    positive (its camera head predicts each field of view through a ReLU, so a zero field of view
    gives an infinite focal length, and unprojecting at it puts every point on the optical axis)."""
    focal = K[:, [0, 1], [0, 1]]
    return np.asarray(~(np.isfinite(K).all(axis=(1, 2)) & (focal > 0).all(axis=1)))


def to_scene(geometry: Geometry, known_cam_T_world: np.ndarray, quantile: float) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 3), colours (N, 3) in [0, 1]) in the scene's frame: the similarity that maps
    VGGT's camera centres onto `known_cam_T_world`'s, applied to every point whose confidence is
    above the `quantile` of all confidences (the lab's worldexplorer `vggt_confidence_threshold`)."""
    centres = np.stack([np.linalg.inv(p)[:3, 3] for p in geometry.cam_T_world])
    known = np.stack([np.linalg.inv(p)[:3, 3] for p in known_cam_T_world])
    scale, rotation, shift = similarity(centres, known)
    conf = geometry.confidence.reshape(-1)
    keep = conf >= np.quantile(conf, quantile) if quantile > 0 else np.ones_like(conf, bool)
    keep &= np.isfinite(geometry.points.reshape(-1, 3)).all(axis=1)
    points = geometry.points.reshape(-1, 3)[keep] @ (scale * rotation).T + shift
    return points, geometry.colors.reshape(-1, 3)[keep]


class Vggt:
    """VGGT loaded once per Pod."""

    def __init__(self, weights: Path, placement: Placement) -> None:
        self.models = import_research("vggt", "models.vggt")
        self.load_fn = import_research("vggt", "utils.load_fn")
        self.pose_enc = import_research("vggt", "utils.pose_enc")
        self.geometry = import_research("vggt", "utils.geometry")
        self.placement = placement
        self.source = provenance("vggt")
        """Which VGGT code this is (its commit), for producedBy."""
        self.model = self.models.VGGT.from_pretrained(str(weights)).to(placement.device).eval()

    def __call__(self, image_paths: list[Path]) -> Geometry:
        import torch

        device = self.placement.device
        images = self.load_fn.load_and_preprocess_images([str(p) for p in image_paths]).to(device)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
        with torch.inference_mode(), autocast:
            predictions = self.model(images)
        extrinsic, intrinsic = self.pose_enc.pose_encoding_to_extri_intri(predictions["pose_enc"], images.shape[-2:])
        depth = predictions["depth"][0].float().cpu().numpy()
        extrinsic_np = extrinsic[0].float().cpu().numpy()
        intrinsic_np = intrinsic[0].float().cpu().numpy()
        points = np.asarray(self.geometry.unproject_depth_map_to_point_map(depth, extrinsic_np, intrinsic_np),
                            np.float64)
        points[degenerate_frames(intrinsic_np)] = np.nan  # to_scene drops them: no point on an optical axis
        poses = np.tile(np.eye(4), (len(extrinsic_np), 1, 1))
        poses[:, :3, :4] = extrinsic_np
        return Geometry(points, predictions["depth_conf"][0].float().cpu().numpy(),
                        images.permute(0, 2, 3, 1).float().cpu().numpy(), poses, intrinsic_np.astype(np.float64))
