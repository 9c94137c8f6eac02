"""What every Gaussian trainer here uses, written once: the settings (gsplat's simple-trainer
learning rates and densification schedule), initialisation, the optimisers and strategy, the loss,
and the step after the backward pass (optimisers, densification, the Gaussian cap, the means' lr
decay). train.py (one scene), batched.py (several scenes as one set) and the scene library's growing
scene build on these."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genfab.api.gaussians import GaussiansConfig, SplatConfig
from genfab.stages.gaussians.cameras import SceneData, random_init_box
from genfab.stages.gaussians.losses import ssim
from genfab.stages.gaussians.ply import Splats

SH_C0 = 0.28209479177387814
REFERENCE_STEPS = 30_000  # gsplat's simple trainer schedule, scaled to the run's step count


class TrainSettings(GaussiansConfig):
    """The trainer's settings: the resource's `gaussians` block (genfab.api.gaussians) plus what users
    cannot set, declared here once: gsplat's simple-trainer learning rates (means scale with the
    scene) and the MCMC regularisers."""

    means_lr: float = 1.6e-4
    means_lr_final: float = 1.6e-6
    scales_lr: float = 5e-3
    quats_lr: float = 1e-3
    opacities_lr: float = 5e-2
    sh0_lr: float = 2.5e-3
    shN_lr: float = 2.5e-3 / 20
    opacity_reg: float = 0.01  # mcmc only
    scale_reg: float = 0.01  # mcmc only

    @classmethod
    def of(cls, config: SplatConfig) -> TrainSettings:
        """The trainer's settings for a validated `gaussians` block, or the part of it a stage reads
        (`SplatConfig`: the rest keeps its defaults, which that stage never uses)."""
        return cls.model_validate(config.model_dump())

    def schedule(self) -> dict[str, int]:
        """Densification schedule: the 30k-step reference scaled to `steps` (refine every 100 steps
        at 30k, never more often than every 20)."""
        f = self.steps / REFERENCE_STEPS
        if self.strategy == "mcmc":
            return {"refine_start_iter": int(500 * f), "refine_stop_iter": int(25_000 * f),
                    "refine_every": max(20, int(100 * f))}
        return {"refine_start_iter": int(500 * f), "refine_stop_iter": int(15_000 * f),
                "reset_every": max(100, int(3000 * f)), "refine_every": max(20, int(100 * f))}

    def sh_interval(self) -> int:
        """Steps between SH degree increases: `sh_degree_interval` is the 30k-step reference's,
        scaled to `steps` as the densification schedule is (gsplat's `--steps_scaler`, which scales
        its `sh_degree_interval` with the rest: 233 at 7,000 steps). Scene growing, which has no
        fixed length, reads the field as it is."""
        return max(1, int(self.sh_degree_interval * self.steps / REFERENCE_STEPS))


@dataclass
class TrainResult:
    splats: Splats
    metrics: dict[str, Any]
    test_renders: list[np.ndarray] = field(default_factory=list)


def image_loss(pred: torch.Tensor, target: torch.Tensor, ssim_lambda: float) -> torch.Tensor:
    """(1 - lambda) L1 + lambda (1 - SSIM) on [B, H, W, 3] images (gsplat's simple-trainer loss).
    On CUDA the SSIM is fused (fused_ssim.py: ~48 MiB added at 1024x1024 against ~320 for autograd's).
    Recomputing SSIM in the backward pass (torch.utils.checkpoint) was measured on the H100 before:
    slower (1.05x the plain loop's wall time instead of 0.79-0.88x) and still above its peak memory."""
    value = ssim(pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2))
    return F.l1_loss(pred, target) * (1 - ssim_lambda) + (1 - value) * ssim_lambda


def composite(rgb: torch.Tensor, alpha: torch.Tensor,
              background: torch.Tensor | Sequence[float] | None) -> torch.Tensor:
    """Blend a known background behind the splats: what gsplat's `backgrounds` does, done here
    because gsplat 1.5 rejects `backgrounds` in packed mode. Training loops pass the colour as a
    device tensor made once (building it from a tuple is a blocking host-to-device copy)."""
    if background is None:
        return rgb
    if not isinstance(background, torch.Tensor):
        background = torch.tensor(background, dtype=rgb.dtype, device=rgb.device)
    return rgb + (1 - alpha) * background


def background_tensor(s: TrainSettings, device: torch.device) -> torch.Tensor | None:
    return None if s.background is None else torch.tensor(s.background, dtype=torch.float32, device=device)


def images_tensor(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """HxWx3 float [0,1] or uint8 images -> one [V, H, W, 3] uint8 tensor on `device`; on the CPU
    it is pinned, so that one view at a time can be uploaded without blocking (see `upload`)."""
    stacked = torch.from_numpy(np.stack([(im * 255 + 0.5).astype(np.uint8) if im.dtype != np.uint8 else im
                                         for im in images]))
    if device.type == "cpu":
        return stacked.pin_memory() if torch.cuda.is_available() else stacked
    return stacked.to(device)


def upload(host: torch.Tensor, index: int, device: torch.device) -> torch.Tensor:
    """View `index` of pinned uint8 images as a [1, H, W, C] float tensor in [0, 1] on the device.
    The copy is asynchronous, so the host never waits for the GPU here; the training images stay in
    host memory (a 200-view 1080p capture is 1.2 GB, which would otherwise sit on the GPU)."""
    return host[index : index + 1].to(device, non_blocking=True).float().div_(255.0)


def knn_scale(points: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Root-mean-square distance to the k nearest neighbours, gsplat's simple-trainer initial scale
    (`sqrt(mean(d^2))`; the plain mean is up to a few per cent smaller). Chunked cdist: no extra
    dependency."""
    out = torch.empty(len(points), device=points.device)
    chunk = max(64, (32 << 20) // max(1, 4 * len(points)))  # ~32 MiB of distances at a time
    for start in range(0, len(points), chunk):
        d = torch.cdist(points[start:start + chunk], points)
        out[start:start + chunk] = d.topk(k + 1, largest=False).values[:, 1:].square().mean(-1).sqrt()
    return out.clamp_min(1e-7)


def init_splats(scene: SceneData, s: TrainSettings, device: torch.device, generator: torch.Generator
                ) -> dict[str, torch.nn.Parameter]:
    """gsplat simple-trainer initialisation from points (SfM/depth) or random in the scene bounds
    (`random_init_box`)."""
    if s.init_type == "points" and scene.points is not None and len(scene.points):
        pts = torch.as_tensor(scene.points, dtype=torch.float32, device=device)
        rgb = torch.as_tensor(scene.colors if scene.colors is not None else np.full((len(pts), 3), 0.5),
                              dtype=torch.float32, device=device)
    else:
        n = s.init_num_points
        center, half = random_init_box(scene.cameras, s.init_extent)
        pts = (torch.rand((n, 3), generator=generator, device=device) * 2 - 1) * half + torch.as_tensor(
            center, dtype=torch.float32, device=device)
        rgb = torch.rand((n, 3), generator=generator, device=device)
    if s.strategy == "mcmc" and len(pts) > s.cap_max:
        pts, rgb = pts[: s.cap_max], rgb[: s.cap_max]
    n = len(pts)
    init_opacity, init_scale = (0.5, 0.1) if s.strategy == "mcmc" else (0.1, 1.0)
    scales = torch.log(knn_scale(pts) * init_scale).unsqueeze(-1).repeat(1, 3)
    quats = torch.rand((n, 4), generator=generator, device=device)
    opacities = torch.logit(torch.full((n,), init_opacity, device=device))
    k = (s.sh_degree + 1) ** 2
    sh0 = ((rgb - 0.5) / SH_C0).unsqueeze(1)
    shN = torch.zeros((n, k - 1, 3), device=device)
    return {name: torch.nn.Parameter(t.contiguous()) for name, t in
            (("means", pts), ("scales", scales), ("quats", quats), ("opacities", opacities), ("sh0", sh0),
             ("shN", shN))}


def sh_coefficients(params: Mapping[str, torch.Tensor], degree: int) -> torch.Tensor:
    """The [N, (degree + 1)^2, 3] SH coefficients gsplat evaluates at `degree`. gsplat reads no
    others, so concatenating all of them (as the simple trainer does) only costs memory: at degree 1,
    where densification peaks in short schedules, a quarter of the copy and of its gradient. The
    unused coefficients still get their (zero) gradient, so Adam steps them exactly as before."""
    return torch.cat([params["sh0"], params["shN"][:, : (degree + 1) ** 2 - 1]], 1)


def view_colors(means: torch.Tensor, coeffs: torch.Tensor, center: torch.Tensor, degree: int) -> torch.Tensor:
    """[N, 3] colours of SH `coeffs` [N, K, 3] seen from the camera centre `center` [3], as gsplat's
    `rasterization` evaluates them (its SH kernel, offset by 0.5, clamped at 0) for one camera. It
    derives the centre by inverting the view matrix on the GPU, and `torch.inverse` checks its result
    on the host: a sync every step, which stops the host queueing the next step's work while the GPU
    finishes this one. Here the centre comes from the host's camera. Every Gaussian is evaluated, not
    only the visible ones: the rasteriser reads no invisible colour and sends none a gradient."""
    from gsplat import spherical_harmonics

    return torch.clamp_min(spherical_harmonics(degree, means - center, coeffs) + 0.5, 0.0)


def make_optimizers(params: dict[str, torch.nn.Parameter], s: TrainSettings, scale: float,
                    fused: bool) -> dict[str, torch.optim.Optimizer]:
    lrs = {"means": s.means_lr * scale, "scales": s.scales_lr, "quats": s.quats_lr, "opacities": s.opacities_lr,
           "sh0": s.sh0_lr, "shN": s.shN_lr}
    opt_cls: Callable[..., torch.optim.Optimizer] = torch.optim.SparseAdam if s.sparse_grad else torch.optim.Adam
    extra = {"fused": True} if fused and not s.sparse_grad and params["means"].is_cuda else {}
    return {name: opt_cls([{"params": params[name], "lr": lr, "name": name}], eps=1e-15, **extra)
            for name, lr in lrs.items()}


def adam_steps(optimizers: list[torch.optim.Optimizer]) -> None:
    """Step each optimiser and drop its gradients. A fused `torch.optim.Adam` whose state exists
    goes straight to torch's fused kernel (`torch._fused_adam_`, what its `step()` launches): one
    step-count increment for all of them, then one kernel each. `step()`'s own Python (hooks,
    checks, grouping by device and dtype) cost ~0.12 ms per optimiser, ~0.7 ms of a 6 ms step for
    3DGS's six (benchmarks/gaussians_profile.py at 1024²). Anything else, and a first step (which
    creates the state), takes `step()`."""
    direct = []
    for opt in optimizers:
        if direct_fused_adam(opt):
            direct.append(opt)
        else:
            opt.step()
    if direct:
        groups = [opt.param_groups[0] for opt in direct]
        states = [opt.state[g["params"][0]] for opt, g in zip(direct, groups, strict=True)]
        torch._foreach_add_([st["step"] for st in states], 1)
        for g, st in zip(groups, states, strict=True):
            p = g["params"][0]
            beta1, beta2 = g["betas"]
            torch._fused_adam_([p], [p.grad], [st["exp_avg"]], [st["exp_avg_sq"]], [], [st["step"]],
                               lr=g["lr"], beta1=beta1, beta2=beta2, weight_decay=0.0, eps=g["eps"],
                               amsgrad=False, maximize=False, grad_scale=None, found_inf=None)
    for opt in optimizers:
        for g in opt.param_groups:
            for p in g["params"]:
                p.grad = None


def direct_fused_adam(opt: torch.optim.Optimizer) -> bool:
    """Whether `adam_steps` may launch this optimiser's fused kernel itself: plain Adam (no weight
    decay, AMSGrad, maximising, differentiable or tensor learning rate), fused, one group of one
    dense parameter with a gradient and its state already made."""
    if type(opt) is not torch.optim.Adam or len(opt.param_groups) != 1:
        return False
    g = opt.param_groups[0]
    if len(g["params"]) != 1 or not g["fused"] or g["weight_decay"] or g["amsgrad"] or g["maximize"] \
            or g["differentiable"] or g.get("decoupled_weight_decay") or isinstance(g["lr"], torch.Tensor):
        return False
    p = g["params"][0]
    grad = p.grad
    return grad is not None and not grad.is_sparse and "step" in opt.state.get(p, {})


def make_strategy(s: TrainSettings) -> Any:
    from gsplat.strategy import MCMCStrategy

    if s.strategy == "mcmc":
        return MCMCStrategy(cap_max=s.cap_max, **s.schedule())
    return sync_free_default_strategy()(absgrad=False, **s.schedule())


@functools.cache
def sync_free_default_strategy() -> type:
    """gsplat's DefaultStrategy with its per-step statistics update made sync-free.

    The stock update (non-packed mode) picks the visible Gaussians with `torch.where`, a
    device-to-host synchronisation on every densifying step, so the host cannot queue the next step
    while the GPU works. Masked sums over all Gaussians give the same statistics (bit for bit with
    one camera per step: invisible Gaussians add exactly 0) with nothing to wait for. Densification,
    pruning and resets are gsplat's own."""
    from gsplat.strategy import DefaultStrategy

    class SyncFreeDefaultStrategy(DefaultStrategy):  # type: ignore[misc]
        def _update_state(self, params: dict[str, torch.nn.Parameter], state: dict[str, Any],
                          info: dict[str, Any], packed: bool = False) -> None:
            if packed or self.refine_scale2d_stop_iter > 0:  # packed has no sync; scale2d stays gsplat's
                super()._update_state(params, state, info, packed=packed)
                return
            meta = info[self.key_for_gradient]
            grads = (meta.absgrad if self.absgrad else meta.grad).clone()  # [..., C, N, 2]
            grads[..., 0] *= info["width"] / 2.0 * info["n_cameras"]
            grads[..., 1] *= info["height"] / 2.0 * info["n_cameras"]
            n = len(params["means"])
            visible = (info["radii"] > 0.0).all(dim=-1).reshape(-1, n)  # [images, N]
            if state["grad2d"] is None:
                state["grad2d"] = torch.zeros(n, device=grads.device)
            if state["count"] is None:
                state["count"] = torch.zeros(n, device=grads.device)
            state["grad2d"] += (grads.norm(dim=-1).reshape(-1, n) * visible).sum(0)
            state["count"] += visible.sum(0)

    return SyncFreeDefaultStrategy


def enforce_cap(params: dict[str, torch.nn.Parameter], optimizers: dict[str, torch.optim.Optimizer],
                state: dict[str, Any], cap: int) -> None:
    """Bounded memory per scene for the default strategy: keep the `cap` most opaque Gaussians."""
    from gsplat.strategy.ops import remove

    n = len(params["means"])
    if n <= cap:
        return
    keep = torch.zeros(n, dtype=torch.bool, device=params["means"].device)
    keep[params["opacities"].detach().topk(cap).indices] = True
    remove(params, optimizers, state, ~keep)  # the running statistics too: they index the same Gaussians


def training_loss(pred: torch.Tensor, target: torch.Tensor, params: dict[str, torch.nn.Parameter],
                  s: TrainSettings) -> torch.Tensor:
    """`image_loss`, plus MCMC's opacity and scale regularisers when that strategy runs."""
    loss = image_loss(pred, target, s.ssim_lambda)
    if s.strategy == "mcmc":
        loss = loss + s.opacity_reg * torch.sigmoid(params["opacities"]).mean() \
            + s.scale_reg * torch.exp(params["scales"]).mean()
    return loss


def means_lr_gamma(s: TrainSettings) -> float:
    """The per-step factor that takes the means' learning rate from `means_lr` to `means_lr_final`
    over `steps` (gsplat's simple-trainer exponential decay)."""
    return float((s.means_lr_final / s.means_lr) ** (1.0 / max(1, s.steps)))


@dataclass
class Optimisation:
    """The optimisers, the densification strategy and its state of one Gaussian set, and what every
    trainer does after the backward pass (`after_backward`)."""

    params: dict[str, torch.nn.Parameter]
    optimizers: dict[str, torch.optim.Optimizer]
    strategy: Any
    state: dict[str, Any]
    gamma: float

    @classmethod
    def create(cls, params: dict[str, torch.nn.Parameter], s: TrainSettings, scale: float,
               cap_max: int | None = None) -> Optimisation:
        """Adam groups with the means' rate scaled by `scale`; the strategy capped at `cap_max`
        Gaussians (the settings' own cap by default)."""
        optimizers = make_optimizers(params, s, scale, fused=True)
        strategy = make_strategy(s if cap_max is None else s.model_copy(update={"cap_max": cap_max}))
        strategy.check_sanity(params, optimizers)
        state = strategy.initialize_state(**({} if s.strategy == "mcmc" else {"scene_scale": scale}))
        return cls(params, optimizers, strategy, state, means_lr_gamma(s))

    def before_backward(self, step: int, info: dict[str, Any]) -> None:
        self.strategy.step_pre_backward(self.params, self.optimizers, self.state, step, info)

    def after_backward(self, s: TrainSettings, step: int, info: dict[str, Any], packed: bool,
                       cap: Callable[[], None]) -> None:
        """Step every optimiser, then the strategy's densification (the default strategy also keeps
        the Gaussian cap at each refinement, through `cap`), then decay the means' learning rate."""
        adam_steps(list(self.optimizers.values()))
        group = self.optimizers["means"].param_groups[0]
        if s.strategy == "mcmc":
            self.strategy.step_post_backward(self.params, self.optimizers, self.state, step, info, lr=group["lr"])
        else:
            self.strategy.step_post_backward(self.params, self.optimizers, self.state, step, info, packed=packed)
            if step % self.strategy.refine_every == 0:
                cap()
        group["lr"] *= self.gamma


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
