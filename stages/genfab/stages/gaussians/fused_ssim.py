"""SSIM as two Triton kernels (forward, backward) on CUDA: what fused-ssim does for gsplat's simple
trainer, written for genfab (fused-ssim is built from GitHub source only; Triton comes with PyTorch).

Same definition as `losses.ssim` (11x11 Gaussian window, sigma 1.5, 'valid' borders, mean over the
valid pixels), differentiable in the first image. Nothing but three per-pixel derivative maps is kept
for the backward pass (the autograd version keeps the five blurred statistics, their blur inputs and
the SSIM map's intermediates: ~260 MiB at 1024x1024), and no intermediate map is written at all: each
program blurs its tile horizontally row by row and accumulates the vertical pass in registers.

The derivation. With mu_x, mu_y, E[x^2], E[y^2], E[xy] the blurred statistics at an output pixel q,
s_xx = E[x^2] - mu_x^2, s_xy = E[xy] - mu_x mu_y, and SSIM(q) = N1 N2 / (D1 D2) where
N1 = 2 mu_x mu_y + C1, N2 = 2 s_xy + C2, D1 = mu_x^2 + mu_y^2 + C1, D2 = s_xx + s_yy + C2:
    B = dS/dE[x^2] = -S / D2,    C = dS/dE[xy] = 2 N1 / (D1 D2),
    A = dS/dmu_x (the E terms held) = 2 mu_y N2 / (D1 D2) - 2 mu_x S / D1 - 2 mu_x B - mu_y C.
Every statistic is a blur of x, x^2 or x*y, so for an input pixel p (blur^T: the window's transpose,
a 'full' blur of the valid-sized maps):
    dmean(S)/dx_p = (1/N) [blur^T(A)(p) + 2 x_p blur^T(B)(p) + y_p blur^T(C)(p)].
"""

from __future__ import annotations

import math
from typing import Any

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only PyTorch: losses.ssim uses its torch paths
    triton = None

WINDOW, SIGMA = 11, 1.5
C1, C2 = 0.01 ** 2, 0.03 ** 2
TILE_H, BLOCK_W = 16, 64
"""Output rows and columns per program: 16 rows reuse each horizontally blurred input row 11 times in
registers; 64 columns are one coalesced row segment per warp group."""


def available(t: torch.Tensor) -> bool:
    """Whether the kernels can run on `t` (CUDA, Triton importable, both sides at least the window)."""
    return triton is not None and t.is_cuda and min(t.shape[-2:]) >= WINDOW


_GAUSS: dict[torch.device, torch.Tensor] = {}


def _gauss(device: torch.device) -> torch.Tensor:
    if device not in _GAUSS:
        x = torch.arange(WINDOW, dtype=torch.float64) - WINDOW // 2
        g = torch.exp(-(x * x) / (2 * SIGMA * SIGMA))
        _GAUSS[device] = (g / g.sum()).to(device=device, dtype=torch.float32)
    return _GAUSS[device]


if triton is not None:

    @triton.jit
    def _tile(TILE: tl.constexpr, BLOCK: tl.constexpr):
        # this program's plane (image x channel), first row, row offsets and columns
        plane = tl.program_id(2)
        return plane, tl.program_id(1) * TILE, tl.arange(0, TILE), tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)

    @triton.jit
    def _forward_kernel(x_ptr, y_ptr, g_ptr, partial_ptr, a_ptr, b_ptr, c_ptr, C, H, W, OH, OW,
                        sxb, sxc, sxh, sxw, syb, syc, syh, syw, c1, c2,
                        TILE: tl.constexpr, BLOCK: tl.constexpr, SAVE: tl.constexpr):
        plane, row0, rows, cols = _tile(TILE, BLOCK)
        x_base = x_ptr + (plane // C) * sxb + (plane % C) * sxc
        y_base = y_ptr + (plane // C) * syb + (plane % C) * syc
        mx = tl.zeros((TILE, BLOCK), tl.float32)
        my = tl.zeros((TILE, BLOCK), tl.float32)
        exx = tl.zeros((TILE, BLOCK), tl.float32)
        eyy = tl.zeros((TILE, BLOCK), tl.float32)
        exy = tl.zeros((TILE, BLOCK), tl.float32)
        for r in range(0, TILE + 10):
            src = row0 + r
            hx = tl.zeros((BLOCK,), tl.float32)
            hy = tl.zeros((BLOCK,), tl.float32)
            hxx = tl.zeros((BLOCK,), tl.float32)
            hyy = tl.zeros((BLOCK,), tl.float32)
            hxy = tl.zeros((BLOCK,), tl.float32)
            for k in tl.static_range(11):
                gk = tl.load(g_ptr + k)
                inside = (cols + k < W) & (src < H)
                xv = tl.load(x_base + src * sxh + (cols + k) * sxw, mask=inside, other=0.0).to(tl.float32)
                yv = tl.load(y_base + src * syh + (cols + k) * syw, mask=inside, other=0.0).to(tl.float32)
                hx += gk * xv
                hy += gk * yv
                hxx += gk * xv * xv
                hyy += gk * yv * yv
                hxy += gk * xv * yv
            d = r - rows  # this input row's tap for each output row of the tile
            wv = tl.load(g_ptr + d, mask=(d >= 0) & (d < 11), other=0.0)[:, None]
            mx += wv * hx[None, :]
            my += wv * hy[None, :]
            exx += wv * hxx[None, :]
            eyy += wv * hyy[None, :]
            exy += wv * hxy[None, :]
        sxx = exx - mx * mx
        syy = eyy - my * my
        sxy = exy - mx * my
        n1 = 2 * mx * my + c1
        n2 = 2 * sxy + c2
        d1 = mx * mx + my * my + c1
        d2 = sxx + syy + c2
        s = (n1 * n2) / (d1 * d2)
        out_rows = row0 + rows
        valid = (out_rows[:, None] < OH) & (cols[None, :] < OW)
        index = (plane * tl.num_programs(1) + tl.program_id(1)) * tl.num_programs(0) + tl.program_id(0)
        tl.store(partial_ptr + index, tl.sum(tl.sum(tl.where(valid, s, 0.0), axis=1), axis=0))
        if SAVE:
            db = -s / d2
            dc = 2 * n1 / (d1 * d2)
            da = 2 * my * n2 / (d1 * d2) - 2 * mx * s / d1 - 2 * mx * db - my * dc
            offset = plane * OH * OW + out_rows[:, None] * OW + cols[None, :]
            tl.store(a_ptr + offset, da, mask=valid)
            tl.store(b_ptr + offset, db, mask=valid)
            tl.store(c_ptr + offset, dc, mask=valid)

    @triton.jit
    def _backward_kernel(x_ptr, y_ptr, g_ptr, a_ptr, b_ptr, c_ptr, scale_ptr, out_ptr, C, H, W, OH, OW,
                         sxb, sxc, sxh, sxw, syb, syc, syh, syw,
                         TILE: tl.constexpr, BLOCK: tl.constexpr):
        plane, row0, rows, cols = _tile(TILE, BLOCK)
        ta = tl.zeros((TILE, BLOCK), tl.float32)
        tb = tl.zeros((TILE, BLOCK), tl.float32)
        tc = tl.zeros((TILE, BLOCK), tl.float32)
        maps = plane * OH * OW
        for r in range(0, TILE + 10):
            src = row0 + r - 10  # a row of the valid-sized maps that reaches this tile
            ha = tl.zeros((BLOCK,), tl.float32)
            hb = tl.zeros((BLOCK,), tl.float32)
            hc = tl.zeros((BLOCK,), tl.float32)
            for k in tl.static_range(11):
                gk = tl.load(g_ptr + k)
                inside = (cols - k >= 0) & (cols - k < OW) & (src >= 0) & (src < OH)
                offset = maps + src * OW + cols - k
                ha += gk * tl.load(a_ptr + offset, mask=inside, other=0.0)
                hb += gk * tl.load(b_ptr + offset, mask=inside, other=0.0)
                hc += gk * tl.load(c_ptr + offset, mask=inside, other=0.0)
            d = rows - r + 10
            wv = tl.load(g_ptr + d, mask=(d >= 0) & (d < 11), other=0.0)[:, None]
            ta += wv * ha[None, :]
            tb += wv * hb[None, :]
            tc += wv * hc[None, :]
        out_rows = row0 + rows
        inside = (out_rows[:, None] < H) & (cols[None, :] < W)
        bi, ci = plane // C, plane % C
        xv = tl.load(x_ptr + bi * sxb + ci * sxc + out_rows[:, None] * sxh + cols[None, :] * sxw, mask=inside,
                     other=0.0).to(tl.float32)
        yv = tl.load(y_ptr + bi * syb + ci * syc + out_rows[:, None] * syh + cols[None, :] * syw, mask=inside,
                     other=0.0).to(tl.float32)
        grad = tl.load(scale_ptr) * (ta + 2 * xv * tb + yv * tc)
        tl.store(out_ptr + plane * H * W + out_rows[:, None] * W + cols[None, :], grad, mask=inside)


def _grid(rows: int, cols: int, planes: int) -> tuple[int, int, int]:
    return math.ceil(cols / BLOCK_W), math.ceil(rows / TILE_H), planes


def ssim_forward(a: torch.Tensor, b: torch.Tensor, save: bool
                 ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Mean SSIM of [B, C, H, W] images (any strides) and, with `save`, the maps A, B, C."""
    batch, channels, height, width = a.shape
    oh, ow = height - WINDOW + 1, width - WINDOW + 1
    grid = _grid(oh, ow, batch * channels)
    partial = torch.empty(grid[0] * grid[1] * grid[2], device=a.device, dtype=torch.float32)
    shape = (batch, channels, oh, ow) if save else (1,)
    maps = tuple(torch.empty(shape, device=a.device, dtype=torch.float32) for _ in range(3))
    _forward_kernel[grid](a, b, _gauss(a.device), partial, *maps, channels, height, width, oh, ow,
                          *a.stride(), *b.stride(), C1, C2, TILE=TILE_H, BLOCK=BLOCK_W, SAVE=save)
    return partial.sum() / (batch * channels * oh * ow), maps if save else ()


def ssim_backward(a: torch.Tensor, b: torch.Tensor, maps: tuple[torch.Tensor, ...], grad: torch.Tensor
                  ) -> torch.Tensor:
    """d(grad * mean SSIM)/d a, as a contiguous [B, C, H, W] tensor (no host synchronisation)."""
    batch, channels, height, width = a.shape
    oh, ow = maps[0].shape[-2:]
    scale = (grad.float() / (batch * channels * oh * ow)).reshape(1)
    out = torch.empty((batch, channels, height, width), device=a.device, dtype=torch.float32)
    _backward_kernel[_grid(height, width, batch * channels)](
        a, b, _gauss(a.device), *maps, scale, out, channels, height, width, oh, ow, *a.stride(), *b.stride(),
        TILE=TILE_H, BLOCK=BLOCK_W)
    return out.to(a.dtype)


class FusedSsim(torch.autograd.Function):
    """Mean SSIM, differentiable in the first image (the render); the target gets no gradient."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        value, maps = ssim_forward(a, b, save=ctx.needs_input_grad[0])
        if maps:
            ctx.save_for_backward(a, b, *maps)
        return value

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        a, b, *maps = ctx.saved_tensors
        return ssim_backward(a, b, tuple(maps), grad), None


def fused_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of two [B, C, H, W] CUDA images in [0, 1] (see the module's doc); `available` first."""
    if b.requires_grad:
        raise ValueError("fused SSIM differentiates the first image only; detach the target")
    out: torch.Tensor = FusedSsim.apply(a, b)
    return out
