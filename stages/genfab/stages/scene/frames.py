"""The lab's vistadream `Frame`: one view with its RGB, depth, masks and camera, and how frames cross stage
boundaries (one compressed `frames.npz` per sample in object storage).

`frames.npz` is the lab's vistadream data contract, so the lab's own code reads it as it reads its frames:
`{i}/rgb` float32 in [0, 1] (H, W, 3), `{i}/dpt` float32 metres (0 = no depth), `{i}/inpaint`,
`{i}/inpaint_wo_edge`, `{i}/dpt_conf_mask` bool (H, W), `{i}/intrinsic` the 3x3 `K_33`,
`{i}/cam_T_world` the 4x4 camera-to-world transform, and `names`. In memory a frame keeps uint8 RGB
and the world-to-camera matrix genfab's geometry works with (`scene.geometry`); the two conversions
happen here, at the file, and nowhere else.

Mask semantics are the seed's: `inpaint = True` means "supervise this pixel" when training (all of the
input view; only the new regions of an outpainted or inpainted view), `inpaint_wo_edge` is the part
of it that becomes new Gaussians (no depth edges; a new view's also confident depth, the input view's
whatever its confidence), `dpt_conf_mask` where depth is confident.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np

from genfab.stages.scene.geometry import confidence_mask, depth_edges_mask, sanitize_depth

FIELDS = ("rgb", "dpt", "inpaint", "inpaint_wo_edge", "dpt_conf_mask", "intrinsic", "cam_T_world")
MAX_FRAMES = 1000
NPZ_LEVEL = 1
"""zlib's level for `frames.npz`: its float RGB and depth barely compress at any level."""


@dataclass
class Frame:
    name: str
    rgb: np.ndarray
    """(H, W, 3) uint8."""
    dpt: np.ndarray
    """(H, W) float32 metres, 0 = no depth."""
    inpaint: np.ndarray
    """(H, W) bool: supervise."""
    inpaint_wo_edge: np.ndarray
    """(H, W) bool: becomes Gaussians."""
    dpt_conf_mask: np.ndarray
    """(H, W) bool: confident depth."""
    intrinsic: np.ndarray
    """3x3."""
    cam_T_world: np.ndarray
    """4x4 world-to-camera in memory (genfab's geometry); the file holds its inverse, the seed's
    camera-to-world `cam_T_world`."""

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    def check(self) -> None:
        """Shapes and dtypes as the contract says (a corrupt or foreign npz fails here, not later)."""
        h, w = self.height, self.width
        if self.rgb.shape != (h, w, 3) or self.rgb.dtype != np.uint8:
            raise ValueError(f"frame {self.name}: rgb must be (H, W, 3) uint8, got {self.rgb.shape} {self.rgb.dtype}")
        for key in ("dpt", "inpaint", "inpaint_wo_edge", "dpt_conf_mask"):
            if getattr(self, key).shape != (h, w):
                raise ValueError(f"frame {self.name}: {key} must be {(h, w)}, got {getattr(self, key).shape}")
        if self.intrinsic.shape != (3, 3) or self.cam_T_world.shape != (4, 4):
            raise ValueError(f"frame {self.name}: intrinsic must be 3x3 and cam_T_world 4x4")


def masks_from_depth(depth: np.ndarray, supervise: np.ndarray, confidence: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(`inpaint_wo_edge`, `dpt_conf_mask`) for a view whose supervised pixels are `supervise`."""
    conf = confidence_mask(depth, confidence)
    return supervise & ~depth_edges_mask(depth) & conf, conf


def input_only_frames(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, confidence: np.ndarray | None = None
                      ) -> list[Frame]:
    """`stage: no-outpaint`: the input view alone, every pixel supervised and a splat on every pixel off a
    depth edge whatever the confidence (the lab's input frame: `inpaint_wo_edge` is `~edges`)."""
    depth = sanitize_depth(depth)
    everything = np.ones(depth.shape, bool)
    conf = confidence_mask(depth, confidence)
    return [Frame("input", rgb, depth, everything, ~depth_edges_mask(depth), conf, np.asarray(K, np.float64),
                  np.eye(4))]


def _file_arrays(frame: Frame) -> dict[str, np.ndarray]:
    """A frame as the lab's vistadream contract stores it (float RGB in [0, 1], camera-to-world)."""
    arrays = {key: getattr(frame, key) for key in FIELDS}
    arrays["rgb"] = frame.rgb.astype(np.float32) / np.float32(255.0)
    arrays["cam_T_world"] = np.linalg.inv(np.asarray(frame.cam_T_world, np.float64))
    return arrays


def frames_to_npz(frames: list[Frame]) -> bytes:
    arrays: dict[str, np.ndarray] = {"names": np.array([f.name for f in frames])}
    for i, frame in enumerate(frames):
        frame.check()
        for key, value in _file_arrays(frame).items():
            arrays[f"{i}/{key}"] = value
    buf = io.BytesIO()
    # What `np.savez_compressed` writes (a deflated zip of .npy files, read by `np.load`), at zlib's
    # fastest level: a scene of ten 672x512 views takes 0.8 s instead of 4.4 s for 3 % more bytes.
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=NPZ_LEVEL) as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()


def _from_file(name: str, arrays: dict[str, np.ndarray]) -> Frame:
    rgb = np.asarray(arrays["rgb"])
    if rgb.dtype == np.uint8:  # written by genfab before the seed's contract: uint8, world-to-camera
        return Frame(name, *(arrays[key] for key in FIELDS))
    if rgb.dtype != np.float32:
        raise ValueError(f"frame {name}: rgb must be float32 in [0, 1] (the lab's vistadream script's "
                         f"frames.npz), got {rgb.dtype}")
    values = {**arrays, "rgb": np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8),
              "cam_T_world": np.linalg.inv(np.asarray(arrays["cam_T_world"], np.float64))}
    return Frame(name, *(values[key] for key in FIELDS))


def frames_from_npz(data: bytes) -> list[Frame]:
    """Frames written by `frames_to_npz`; ValueError for anything else (no pickles are loaded)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            names = [str(n) for n in npz["names"]][:MAX_FRAMES]
            frames = [_from_file(name, {key: npz[f"{i}/{key}"] for key in FIELDS}) for i, name in enumerate(names)]
    except (KeyError, OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"not a frames.npz genfab wrote: {exc}") from None
    for frame in frames:
        frame.check()
    return frames
