"""The gaussians trainer's sync-free DefaultStrategy keeps gsplat's densification statistics."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gsplat")

from gsplat.strategy import DefaultStrategy  # noqa: E402

from genfab.stages.gaussians.core import TrainSettings, make_strategy  # noqa: E402


def fake_info(images: int, n: int, seed: int, absgrad: bool) -> dict[str, Any]:
    """What gsplat's non-packed rasterization leaves for the strategy after backward."""
    g = torch.Generator().manual_seed(seed)
    means2d = torch.randn(images, n, 2, generator=g, requires_grad=True)
    (means2d * torch.randn(images, n, 2, generator=g)).sum().backward()
    if absgrad:
        means2d.absgrad = means2d.grad.abs() * 2  # type: ignore[attr-defined]
    radii = torch.randint(0, 3, (images, n, 2), generator=g, dtype=torch.int32)
    return {"means2d": means2d, "radii": radii, "width": 384, "height": 256, "n_cameras": images,
            "gaussian_ids": None}


@pytest.mark.parametrize(("images", "absgrad"), [(1, False), (1, True), (3, False)])
def test_sync_free_update_matches_gsplat(images: int, absgrad: bool) -> None:
    n = 1000
    ours = make_strategy(TrainSettings(steps=3000))
    ours.absgrad = absgrad
    stock = DefaultStrategy(absgrad=absgrad, **TrainSettings(steps=3000).schedule())
    assert isinstance(ours, DefaultStrategy) and type(ours) is not DefaultStrategy
    params = {"means": torch.zeros(n, 3)}
    state_ours, state_stock = ours.initialize_state(scene_scale=1.0), stock.initialize_state(scene_scale=1.0)
    for step in range(4):  # accumulates over steps like training does
        info = fake_info(images, n, step, absgrad)
        ours._update_state(params, state_ours, info)
        stock._update_state(params, state_stock, info)
    if images == 1:  # one camera per step (how a single scene trains): bit for bit
        assert torch.equal(state_ours["grad2d"], state_stock["grad2d"])
    else:  # several cameras: the same sums in another order
        torch.testing.assert_close(state_ours["grad2d"], state_stock["grad2d"], rtol=1e-6, atol=1e-6)
    assert torch.equal(state_ours["count"], state_stock["count"])
    assert 0 < state_stock["count"].sum() < 4 * images * n  # some Gaussians were hidden, some seen


def test_mcmc_uses_gsplat_strategy_unchanged() -> None:
    from gsplat.strategy import MCMCStrategy

    assert type(make_strategy(TrainSettings(strategy="mcmc", cap_max=5000, init_num_points=5000))) is MCMCStrategy


def test_the_cap_trims_the_running_statistics_with_the_gaussians() -> None:
    """Regression: the cap once trimmed a copy of the strategy's state, so the next densifying step
    added a cap-sized gradient to a longer statistic (seen at production size: 1,028,135 vs 1,000,000)."""
    from genfab.stages.gaussians.core import enforce_cap, make_optimizers

    n, cap = 12, 5
    g = torch.Generator().manual_seed(0)
    params = {name: torch.nn.Parameter(torch.randn(n, *shape, generator=g)) for name, shape in
              (("means", (3,)), ("scales", (3,)), ("quats", (4,)), ("opacities", ()), ("sh0", (1, 3)),
               ("shN", (3, 3)))}
    optimizers = make_optimizers(params, TrainSettings(), 1.0, fused=False)
    state: dict[str, Any] = {"grad2d": torch.arange(n, dtype=torch.float32), "count": torch.ones(n),
                             "scene_radius": 1.0}
    keep = params["opacities"].detach().topk(cap).indices.sort().values
    expected = state["grad2d"][keep].clone()
    enforce_cap(params, optimizers, state, cap)
    assert len(params["means"]) == cap and len(state["count"]) == cap and state["scene_radius"] == 1.0
    assert torch.equal(state["grad2d"], expected)


def gaussian_params(n: int, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.nn.Parameter(torch.randn(n, *shape, generator=g)) for name, shape in
            (("means", (3,)), ("scales", (3,)), ("quats", (4,)), ("opacities", ()), ("sh0", (1, 3)),
             ("shN", (3, 3)))}


@pytest.mark.parametrize("fused", [True, False])
def test_direct_fused_adam_steps_equal_the_optimisers_own(fused: bool) -> None:
    """`adam_steps` launches torch's fused Adam kernel itself once the state exists: the parameters
    and Adam's moments must come out bit for bit as `step()` leaves them, across a decaying rate, a
    parameter with no gradient and the cap replacing every parameter (and moving its state)."""
    from genfab.stages.gaussians.core import adam_steps, direct_fused_adam, enforce_cap

    sides = []
    for _ in range(2):
        params = gaussian_params(12, 0)
        optimizers = {name: torch.optim.Adam([{"params": p, "lr": 0.01 * (i + 1), "name": name}], eps=1e-15,
                                             fused=fused) for i, (name, p) in enumerate(params.items())}
        state: dict[str, Any] = {"grad2d": torch.zeros(12), "count": torch.zeros(12), "scene_radius": 1.0}
        sides.append((params, optimizers, state))
    g = torch.Generator().manual_seed(1)
    for step in range(6):
        grads = {name: torch.randn(p.shape, generator=g) for name, p in sides[0][0].items()}
        for k, (params, optimizers, state) in enumerate(sides):
            for name, p in params.items():
                p.grad = None if (step == 3 and name == "quats") else grads[name].clone()
            if k == 0:
                for opt in optimizers.values():
                    opt.step()
                    opt.zero_grad(set_to_none=True)
            else:
                assert [direct_fused_adam(o) for o in optimizers.values()] == \
                    [fused and step > 0 and not (step == 3 and n == "quats") for n in optimizers]
                adam_steps(list(optimizers.values()))
                assert all(p.grad is None for p in params.values())
            optimizers["means"].param_groups[0]["lr"] *= 0.9
            if step == 2:
                enforce_cap(params, optimizers, state, 9)
    (ref, ref_opt, _), (ours, our_opt, _) = sides
    for name in ref:
        assert torch.equal(ref[name], ours[name]), name
        a, b = ref_opt[name].state[ref[name]], our_opt[name].state[ours[name]]
        assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a), name
