"""Posed-image loaders: Nerfstudio/Blender `transforms.json` and COLMAP text or binary models.

Both give a `SceneData` of OpenCV-convention cameras (see `cameras.py`). Problems raise
`SceneFormatError` naming the file, the field and what is allowed.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from genfab.stages.gaussians.cameras import (
    Camera,
    Convention,
    SceneData,
    convert_c2w,
    intrinsics,
    qvec_to_rotmat,
    rotmat_to_qvec,
)

# COLMAP camera models: id -> (name, number of params). Only undistorted pinhole models are trained
# on directly; distorted ones must be undistorted first (`colmap image_undistorter`).
COLMAP_MODELS = {0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
                 4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
                 8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12)}
MODEL_IDS = {name: i for i, (name, _) in COLMAP_MODELS.items()}
PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE")


class SceneFormatError(ValueError):
    """A scene folder that cannot be read: which file, which field, what is allowed."""


def find_scene(root: Path) -> tuple[str, Path]:
    """('nerfstudio', transforms.json) or ('colmap', model folder) for a scene folder."""
    if (root / "transforms.json").is_file():
        return "nerfstudio", root / "transforms.json"
    for folder in (root / "sparse" / "0", root / "sparse", root):
        if any((folder / f"cameras.{ext}").is_file() for ext in ("bin", "txt")):
            return "colmap", folder
    raise SceneFormatError(f"{root}: no transforms.json and no COLMAP model (sparse/0/cameras.bin|txt); "
                           "allowed: a Nerfstudio/Blender transforms.json or a COLMAP text/binary model")


def load_scene(root: Path, convention: Convention | None = None) -> SceneData:
    kind, path = find_scene(root)
    return load_transforms(path, convention or "opengl") if kind == "nerfstudio" else load_colmap(path, root)


# -- Nerfstudio / Blender -------------------------------------------------------------------------
def _number(meta: dict[str, Any], key: str, where: str) -> float:
    value = meta.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise SceneFormatError(f"{where}: {key} must be a finite number, got {value!r}")
    return float(value)


def load_transforms(path: Path, convention: Convention = "opengl", read_points: bool = True) -> SceneData:
    """Read `transforms.json`. Poses are OpenGL camera-to-world as Nerfstudio and Blender write them
    (`convention="opencv"` for files written with OpenCV axes). Intrinsics per frame or global:
    `fl_x`/`fl_y`/`cx`/`cy`/`w`/`h`, or Blender's `camera_angle_x` with `w`/`h`. `read_points=False`
    skips the initial point cloud (`ply_file_path`): cameras only."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SceneFormatError(f"{path}: not readable JSON ({exc})") from None
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise SceneFormatError(f"{path}: frames must be a non-empty list")
    cameras = []
    for i, frame in enumerate(frames):
        where = f"{path}: frames[{i}]"
        merged = {**meta, **frame}
        for key in ("k1", "k2", "k3", "k4", "p1", "p2"):
            if merged.get(key):
                raise SceneFormatError(f"{where}: distortion {key}={merged[key]} is not supported; allowed: "
                                       "undistorted images (k1..k4, p1, p2 zero or absent)")
        if "w" not in merged or "h" not in merged:
            raise SceneFormatError(f"{where}: w and h (image size in pixels) are required")
        w, h = int(_number(merged, "w", where)), int(_number(merged, "h", where))
        if "fl_x" in merged:
            fx = _number(merged, "fl_x", where)
            fy = _number(merged, "fl_y", where) if "fl_y" in merged else fx
        elif "camera_angle_x" in merged:
            fx = fy = 0.5 * w / math.tan(0.5 * _number(merged, "camera_angle_x", where))
        else:
            raise SceneFormatError(f"{where}: needs fl_x (and fl_y) or camera_angle_x")
        cx = _number(merged, "cx", where) if "cx" in merged else w / 2
        cy = _number(merged, "cy", where) if "cy" in merged else h / 2
        matrix = np.asarray(frame.get("transform_matrix"), dtype=np.float64)
        if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
            raise SceneFormatError(f"{where}: transform_matrix must be a finite 4x4 matrix")
        file_path = frame.get("file_path")
        if not isinstance(file_path, str) or not file_path:
            raise SceneFormatError(f"{where}: file_path must name the image")
        if not Path(file_path).suffix:
            file_path += ".png"  # Blender's synthetic scenes omit the extension
        cameras.append(Camera(name=Path(file_path).stem, K=intrinsics(fx, fy, cx, cy),
                              c2w=convert_c2w(matrix, convention, "opencv"), width=w, height=h,
                              image=file_path, mask=frame.get("mask_path")))
    points = colors = None
    if meta.get("ply_file_path") and read_points:
        points, colors = read_points_ply(path.parent / str(meta["ply_file_path"]))
    return SceneData(cameras, points, colors, str(path.parent), {"format": "nerfstudio", "convention": convention})


def write_transforms(path: Path, scene: SceneData, convention: Convention = "opengl") -> None:
    frames = []
    for cam in scene.cameras:
        frames.append({"file_path": cam.image, "fl_x": cam.K[0, 0], "fl_y": cam.K[1, 1], "cx": cam.K[0, 2],
                       "cy": cam.K[1, 2], "w": cam.width, "h": cam.height,
                       "transform_matrix": convert_c2w(cam.c2w, "opencv", convention).tolist(),
                       **({"mask_path": cam.mask} if cam.mask else {})})
    meta: dict[str, Any] = {"camera_model": "PINHOLE", "frames": frames}
    if scene.points is not None and len(scene.points):  # Nerfstudio keeps SfM points beside it
        write_points_ply(path.parent / "sparse_pc.ply", scene.points, scene.colors)
        meta["ply_file_path"] = "sparse_pc.ply"
    path.write_text(json.dumps(meta, indent=1))


# -- COLMAP ---------------------------------------------------------------------------------------
def _colmap_K(model: str, params: list[float], where: str) -> np.ndarray:
    if model == "SIMPLE_PINHOLE" or (model in ("SIMPLE_RADIAL", "RADIAL") and not any(params[3:])):
        f, cx, cy = params[:3]
        return intrinsics(f, f, cx, cy)
    if model == "PINHOLE" or (model == "OPENCV" and not any(params[4:])):
        fx, fy, cx, cy = params[:4]
        return intrinsics(fx, fy, cx, cy)
    raise SceneFormatError(f"{where}: camera model {model} with distortion {params} is not supported; allowed: "
                           f"{', '.join(PINHOLE_MODELS)} (run `colmap image_undistorter` first)")


def _read_exact(fh: BinaryIO, fmt: str, where: str) -> tuple[Any, ...]:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise SceneFormatError(f"{where}: truncated file")
    return struct.unpack(fmt, data)


def _colmap_binary(folder: Path) -> tuple[dict[int, tuple[str, int, int, list[float]]],
                                          list[tuple[int, np.ndarray, np.ndarray, int, str]],
                                          np.ndarray | None, np.ndarray | None]:
    cams: dict[int, tuple[str, int, int, list[float]]] = {}
    with (folder / "cameras.bin").open("rb") as fh:
        where = str(folder / "cameras.bin")
        for _ in range(_read_exact(fh, "<Q", where)[0]):
            cid, model_id, w, h = _read_exact(fh, "<iiQQ", where)
            if model_id not in COLMAP_MODELS:
                raise SceneFormatError(f"{where}: unknown camera model id {model_id}")
            name, n = COLMAP_MODELS[model_id]
            cams[cid] = (name, w, h, list(_read_exact(fh, f"<{n}d", where)))
    images = []
    with (folder / "images.bin").open("rb") as fh:
        where = str(folder / "images.bin")
        for _ in range(_read_exact(fh, "<Q", where)[0]):
            iid, qw, qx, qy, qz, tx, ty, tz, cid = _read_exact(fh, "<idddddddi", where)
            raw = b""
            while (ch := fh.read(1)) not in (b"\x00", b""):
                raw += ch
            (n2d,) = _read_exact(fh, "<Q", where)
            fh.seek(24 * n2d, 1)
            images.append((iid, np.array([qw, qx, qy, qz]), np.array([tx, ty, tz]), cid, raw.decode()))
    points = colors = None
    if (folder / "points3D.bin").is_file():
        xyz, rgb = [], []
        with (folder / "points3D.bin").open("rb") as fh:
            where = str(folder / "points3D.bin")
            for _ in range(_read_exact(fh, "<Q", where)[0]):
                values = _read_exact(fh, "<QdddBBBdQ", where)
                xyz.append(values[1:4])
                rgb.append(values[4:7])
                fh.seek(8 * values[8], 1)
        points, colors = np.asarray(xyz, np.float64).reshape(-1, 3), np.asarray(rgb, np.float64).reshape(-1, 3) / 255
    return cams, images, points, colors


def _colmap_text(folder: Path) -> tuple[dict[int, tuple[str, int, int, list[float]]],
                                        list[tuple[int, np.ndarray, np.ndarray, int, str]],
                                        np.ndarray | None, np.ndarray | None]:
    def rows(name: str) -> list[list[str]]:
        lines = (folder / name).read_text().splitlines()
        return [line.split() for line in lines if line.strip() and not line.startswith("#")]
    cams: dict[int, tuple[str, int, int, list[float]]] = {}
    for r in rows("cameras.txt"):
        if r[1] not in MODEL_IDS:
            raise SceneFormatError(f"{folder / 'cameras.txt'}: unknown camera model {r[1]!r}")
        cams[int(r[0])] = (r[1], int(r[2]), int(r[3]), [float(v) for v in r[4:]])
    images = []
    lines = [line for line in (folder / "images.txt").read_text().splitlines() if not line.startswith("#")]
    for header in lines[0::2]:  # every image has a header line and a (possibly empty) points line
        r = header.split()
        if not r:
            continue
        images.append((int(r[0]), np.array([float(v) for v in r[1:5]]), np.array([float(v) for v in r[5:8]]),
                       int(r[8]), " ".join(r[9:])))
    points = colors = None
    if (folder / "points3D.txt").is_file():
        pts = rows("points3D.txt")
        points = np.array([[float(v) for v in r[1:4]] for r in pts]).reshape(-1, 3)
        colors = np.array([[float(v) for v in r[4:7]] for r in pts]).reshape(-1, 3) / 255
    return cams, images, points, colors


def load_colmap(folder: Path, root: Path | None = None) -> SceneData:
    """Read a COLMAP model (binary preferred, else text). Images are looked up under `root/images/`."""
    binary = (folder / "cameras.bin").is_file()
    try:
        cams, images, points, colors = _colmap_binary(folder) if binary else _colmap_text(folder)
    except (OSError, struct.error, ValueError, IndexError) as exc:
        if isinstance(exc, SceneFormatError):
            raise
        raise SceneFormatError(f"{folder}: unreadable COLMAP model ({type(exc).__name__}: {exc})") from None
    cameras = []
    for iid, qvec, tvec, cid, name in sorted(images, key=lambda im: im[4]):
        if cid not in cams:
            raise SceneFormatError(f"{folder}: image {iid} ({name}) refers to missing camera {cid}")
        model, w, h, params = cams[cid]
        w2c = np.eye(4)
        w2c[:3, :3], w2c[:3, 3] = qvec_to_rotmat(qvec), tvec
        cameras.append(Camera(name=Path(name).stem, K=_colmap_K(model, params, f"{folder}: camera {cid}"),
                              c2w=np.linalg.inv(w2c), width=w, height=h, image=f"images/{name}"))
    if not cameras:
        raise SceneFormatError(f"{folder}: the model has no images")
    base = root if root is not None else folder
    return SceneData(cameras, points, colors, str(base), {"format": "colmap-" + ("bin" if binary else "txt")})


def _floats(*values: float) -> str:
    return " ".join(repr(float(v)) for v in values)


def write_colmap(folder: Path, scene: SceneData, binary: bool = True) -> None:
    """Write cameras/images/points3D (one PINHOLE camera per image) as COLMAP binary or text."""
    folder.mkdir(parents=True, exist_ok=True)
    views = [(i + 1, cam, rotmat_to_qvec(cam.w2c[:3, :3]), cam.w2c[:3, 3]) for i, cam in enumerate(scene.cameras)]
    pts = scene.points if scene.points is not None else np.zeros((0, 3))
    rgb = np.round((scene.colors if scene.colors is not None else np.zeros_like(pts)) * 255).astype(np.uint8)
    names = [Path(cam.image or f"{cam.name}.png").name for cam in scene.cameras]
    if binary:
        with (folder / "cameras.bin").open("wb") as fh:
            fh.write(struct.pack("<Q", len(views)))
            for i, cam, _, _ in views:
                fh.write(struct.pack("<iiQQ4d", i, MODEL_IDS["PINHOLE"], cam.width, cam.height,
                                     cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]))
        with (folder / "images.bin").open("wb") as fh:
            fh.write(struct.pack("<Q", len(views)))
            for (i, _, q, t), name in zip(views, names, strict=True):
                fh.write(struct.pack("<i7di", i, *q, *t, i) + name.encode() + b"\x00" + struct.pack("<Q", 0))
        with (folder / "points3D.bin").open("wb") as fh:
            fh.write(struct.pack("<Q", len(pts)))
            for j, (p, c) in enumerate(zip(pts, rgb, strict=True)):
                fh.write(struct.pack("<Q3d3BdQ", j + 1, *p, *c, 0.0, 0))
        return
    (folder / "cameras.txt").write_text("".join(
        f"{i} PINHOLE {cam.width} {cam.height} {_floats(cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2])}\n"
        for i, cam, _, _ in views))
    (folder / "images.txt").write_text("".join(
        f"{i} {' '.join(repr(float(v)) for v in (*q, *t))} {i} {name}\n\n"
        for (i, _, q, t), name in zip(views, names, strict=True)))
    (folder / "points3D.txt").write_text("".join(
        f"{j + 1} {_floats(*p)} {c[0]} {c[1]} {c[2]} 0\n"
        for j, (p, c) in enumerate(zip(pts, rgb, strict=True))))


def read_points_ply(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Initial points from a point-cloud PLY (x, y, z and optionally red, green, blue 0-255)."""
    from plyfile import PlyData

    try:
        vertex = PlyData.read(str(path))["vertex"]
    except (OSError, KeyError, ValueError) as exc:
        raise SceneFormatError(f"{path}: not a point-cloud PLY with a vertex element ({exc})") from None
    names = vertex.data.dtype.names or ()
    if not {"x", "y", "z"} <= set(names):
        raise SceneFormatError(f"{path}: vertex needs x, y, z; has {list(names)}")
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], 1).astype(np.float64)
    rgb = (np.stack([vertex["red"], vertex["green"], vertex["blue"]], 1) / 255.0
           if {"red", "green", "blue"} <= set(names) else None)
    return xyz, rgb


def write_points_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray | None) -> None:
    """A point-cloud PLY (float x, y, z; uchar red, green, blue) as Nerfstudio's `sparse_pc.ply`."""
    from plyfile import PlyData, PlyElement

    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")] + ([("red", "u1"), ("green", "u1"), ("blue", "u1")]
                                                       if rgb is not None else [])
    data = np.empty(len(xyz), dtype=fields)
    for i, axis in enumerate("xyz"):
        data[axis] = xyz[:, i]
    if rgb is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            data[channel] = np.clip(np.round(rgb[:, i] * 255), 0, 255)
    PlyData([PlyElement.describe(data, "vertex")]).write(str(path))
