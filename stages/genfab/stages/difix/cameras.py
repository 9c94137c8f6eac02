"""A difix scene's cameras by integer id: OpenCV-convention `Camera`s (the gaussians stage's) read from
the simple JSON (`{"<id>": {"K": 3x3, "cam_T_world": 4x4 or 3x4, "width", "height"}}`), a Nerfstudio
`transforms.json`, a COLMAP model or HI4D's `rgb_cameras.npz`. Multi-camera captures are static rigs:
a camera's first entry gives its pose. In transforms.json and COLMAP the camera id is the folder of
the image path (`images/16/000123.jpg`, COLMAP name `16/000123.jpg`), else the file name (`16.jpg`)."""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from genfab.stages.difix.layouts import SceneFiles, SourceError
from genfab.stages.gaussians.cameras import Camera
from genfab.stages.gaussians.loaders import SceneFormatError, load_colmap, load_transforms
from genfab.storage.base import Storage


def _matrix(value: Any, shapes: tuple[tuple[int, int], ...], where: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        m = np.zeros(0)
    if m.shape not in shapes or not np.isfinite(m).all():
        raise SourceError(f"{where} must be a finite {' or '.join(f'{a}x{b}' for a, b in shapes)} matrix")
    return m


def _w2c_to_camera(name: str, K: np.ndarray, w2c: np.ndarray, width: int, height: int) -> Camera:
    full = np.eye(4)
    full[: w2c.shape[0], :] = w2c
    return Camera(name=name, K=K, c2w=np.linalg.inv(full), width=width, height=height)


def from_simple_json(raw: bytes, where: str) -> dict[int, Camera]:
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{where}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not doc:
        raise SourceError(f"{where}: must map camera ids to {{K, cam_T_world}}")
    cams: dict[int, Camera] = {}
    for key, entry in doc.items():
        at = f"{where}: camera {key}"
        if not str(key).isdigit() or not isinstance(entry, dict):
            raise SourceError(f"{at}: camera ids must be integers mapping to {{K, cam_T_world}}")
        K = _matrix(entry.get("K"), ((3, 3),), f"{at}: K")
        w2c = _matrix(entry.get("cam_T_world"), ((4, 4), (3, 4)), f"{at}: cam_T_world")
        size = [entry.get(k, 0) for k in ("width", "height")]
        if not all(isinstance(v, int) and v >= 0 for v in size):
            raise SourceError(f"{at}: width and height must be pixel counts")
        cams[int(key)] = _w2c_to_camera(str(key), K, w2c, size[0], size[1])
    return cams


def camera_id(image_path: str, where: str) -> int:
    parts = PurePosixPath(image_path).parts
    if len(parts) >= 2 and parts[-2].isdigit():
        return int(parts[-2])
    stem = PurePosixPath(image_path).stem
    if stem.isdigit():
        return int(stem)
    raise SourceError(f"{where}: image {image_path!r} names no integer camera id (use images/<cam>/<frame>.jpg)")


def _by_id(cameras: list[Camera], where: str) -> dict[int, Camera]:
    out: dict[int, Camera] = {}
    for cam in cameras:
        cid = camera_id(cam.image or cam.name, where)
        out.setdefault(cid, Camera(str(cid), cam.K, cam.c2w, cam.width, cam.height))
    return out


def from_npz(raw: bytes, where: str) -> dict[int, Camera]:
    """HI4D's `rgb_cameras.npz`: `ids`, `intrinsics` (N,3,3), `extrinsics` (N,3,4 world-to-camera)."""
    try:
        data = np.load(io.BytesIO(raw), allow_pickle=False)
        ids, Ks, ext = data["ids"], data["intrinsics"], data["extrinsics"]
    except (OSError, ValueError, KeyError) as exc:
        raise SourceError(f"{where}: not HI4D's camera file (needs ids, intrinsics, extrinsics: {exc})") from None
    if not (len(ids) == len(Ks) == len(ext)):
        raise SourceError(f"{where}: ids, intrinsics and extrinsics differ in length")
    return {int(i): _w2c_to_camera(str(int(i)), _matrix(K, ((3, 3),), f"{where}: intrinsics[{n}]"),
                                   _matrix(E, ((3, 4), (4, 4)), f"{where}: extrinsics[{n}]"), 0, 0)
            for n, (i, K, E) in enumerate(zip(ids, Ks, ext, strict=True))}


def read_cameras(storage: Storage, files: SceneFiles) -> dict[int, Camera]:
    """The scene's cameras, from whichever camera file it has."""
    key = f"{files.scene.key}/{files.cameras_key}"
    where = storage.child(key)
    name = PurePosixPath(files.cameras_key).name
    if name == "cameras.json":
        cams = from_simple_json(storage.read_bytes(key), where)
    elif name.endswith(".npz"):
        cams = from_npz(storage.read_bytes(key), where)
    else:
        with tempfile.TemporaryDirectory(prefix="genfab-cams-") as tmp:
            local = Path(tmp) / name
            local.write_bytes(storage.read_bytes(key))
            folder = PurePosixPath(key).parent
            try:
                if name == "transforms.json":
                    scene = load_transforms(local, read_points=False)
                else:  # a COLMAP model: cameras + images (never the points)
                    ext = PurePosixPath(name).suffix
                    (Path(tmp) / f"images{ext}").write_bytes(storage.read_bytes(f"{folder}/images{ext}"))
                    scene = load_colmap(Path(tmp))
            except SceneFormatError as exc:  # name the source, not the scratch copy
                raise SourceError(str(exc).replace(tmp, storage.child(str(folder)))) from None
            cams = _by_id(scene.cameras, where)
    if not cams:
        raise SourceError(f"{where}: no cameras")
    return cams


def viewing_direction(cam: Camera) -> np.ndarray:
    return np.asarray(cam.c2w[:3, 2], dtype=np.float64)


def pose_distance(a: Camera, b: Camera) -> tuple[float, float]:
    """(distance between centres, angle between viewing directions in degrees): the nearest-camera key."""
    cos = float(np.clip(viewing_direction(a) @ viewing_direction(b), -1.0, 1.0))
    return float(np.linalg.norm(a.center - b.center)), math.degrees(math.acos(cos))
