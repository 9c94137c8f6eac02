"""The standard 3DGS PLY (what SuperSplat, the Inria viewer, Polycam, nerfstudio and gsplat read).

One `vertex` element, binary little-endian float32, properties in this order:
`x y z nx ny nz f_dc_0..2 f_rest_0..(3*(K-1)-1) opacity scale_0..2 rot_0..3`, with log-scales, logit
opacity, rotation as (w, x, y, z) and `f_rest` channel-major (all R coefficients, then G, then B),
as the original implementation writes them. Normals are zero (viewers ignore them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Splats:
    """Gaussian parameters in the PLY's (optimisation) space, numpy float32."""

    means: np.ndarray  # (N, 3)
    scales: np.ndarray  # (N, 3) log
    quats: np.ndarray  # (N, 4) wxyz, not necessarily normalised
    opacities: np.ndarray  # (N,) logit
    sh0: np.ndarray  # (N, 1, 3)
    shN: np.ndarray  # (N, K-1, 3)

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return round(float(np.sqrt(self.shN.shape[1] + 1))) - 1


def property_names(sh_rest: int) -> list[str]:
    """Property order for `sh_rest` = K-1 higher-order SH coefficients per channel."""
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(3 * sh_rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def non_finite_rows(splats: Splats) -> int:
    """How many Gaussians `write_ply` leaves out for a NaN or inf value, without building the rows (a stage
    that writes its PLY in the background reports the count first)."""
    bad = np.zeros(len(splats), bool)
    if not len(splats):
        return 0
    for values in (splats.means, splats.sh0, splats.shN, splats.opacities, splats.scales, splats.quats):
        bad |= ~np.isfinite(values.reshape(len(splats), -1)).all(axis=1)
    return int(bad.sum())


def write_ply(path: Path, splats: Splats) -> int:
    """Write finite Gaussians; returns how many were dropped for NaN/inf values."""
    from plyfile import PlyData, PlyElement

    n, rest = len(splats), splats.shN.shape[1]
    columns = np.concatenate([
        splats.means.reshape(n, 3), np.zeros((n, 3), np.float32), splats.sh0.reshape(n, 3),
        np.transpose(splats.shN.reshape(n, rest, 3), (0, 2, 1)).reshape(n, 3 * rest),
        splats.opacities.reshape(n, 1), splats.scales.reshape(n, 3), splats.quats.reshape(n, 4),
    ], axis=1).astype("<f4")
    finite = np.isfinite(columns).all(axis=1)
    # Every property is a little-endian float32, so the rows of `columns` already are the PLY's records:
    # viewed as the structured type, not copied field by field (800,000 Gaussians: 0.7 s instead of 1.6 s).
    columns = np.ascontiguousarray(columns[finite])
    data = columns.view([(name, "<f4") for name in property_names(rest)]).reshape(len(columns))
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(data, "vertex")], text=False, byte_order="<").write(str(path))
    return int((~finite).sum())


def read_ply(path: Path) -> Splats:
    from plyfile import PlyData

    vertex = PlyData.read(str(path))["vertex"]
    names = list(vertex.data.dtype.names or ())
    rest = len([n for n in names if n.startswith("f_rest_")])
    missing = [n for n in property_names(rest // 3) if n not in names and n not in ("nx", "ny", "nz")]
    if missing or rest % 3:
        raise ValueError(f"{path}: not a 3DGS PLY (missing {missing}, {rest} f_rest properties)")

    data = vertex.data
    fields = data.dtype.fields or {}
    if all(fields[name][0] == np.dtype("<f4") for name in names) and data.dtype.itemsize == 4 * len(names):
        # every property a packed little-endian float32 (what genfab and the 3DGS tools write): the records
        # are an (n, properties) float32 table, and each group's columns are copied from it in one strided
        # pass, where a column at a time (plyfile's `vertex[name]`) walks the 200 MB of an 800,000-splat
        # scene once per property (1.0 s against about 0.2 s here)
        table = data.view(np.float32).reshape(len(data), len(names))
        at = {name: i for i, name in enumerate(names)}

        def cols(keys: list[str]) -> np.ndarray:
            first = at[keys[0]]
            if [at[k] for k in keys] == list(range(first, first + len(keys))):
                return np.array(table[:, first:first + len(keys)])
            return np.array(table[:, [at[k] for k in keys]])
    else:
        def cols(keys: list[str]) -> np.ndarray:
            return np.stack([np.asarray(vertex[k], np.float32) for k in keys], axis=1)
    n, k = len(data), rest // 3
    return Splats(
        means=cols(["x", "y", "z"]), scales=cols(["scale_0", "scale_1", "scale_2"]),
        quats=cols(["rot_0", "rot_1", "rot_2", "rot_3"]), opacities=cols(["opacity"])[:, 0],
        sh0=cols(["f_dc_0", "f_dc_1", "f_dc_2"]).reshape(n, 1, 3),
        shN=(np.transpose(cols([f"f_rest_{i}" for i in range(rest)]).reshape(n, 3, k), (0, 2, 1)).copy() if rest
             else np.zeros((n, 0, 3), np.float32)),
    )
