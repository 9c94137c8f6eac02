"""DiFix checkpoints resume both ways, optimizer state included: a genfab checkpoint in Difix3D's
`load_ckpt_from_state_dict` with Difix3D's optimizer, and a Difix3D checkpoint in genfab's trainer.

Difix3D's side is rebuilt here from its published code (nv-tlabs/Difix3D at c76edc5):
`src/train_difix.py` lines 80-95 build the optimizer, `src/model.py` `save_ckpt` and
`load_ckpt_from_state_dict` write and read the file. Both run over genfab's DifixNet, whose parameter
names and modules are Difix3D's (tiny random weights)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from scripts.tiny_models import save_tuning_models  # noqa: E402

from genfab.stages.models.difix import DifixNet, load_difix  # noqa: E402
from genfab.stages.models.difix_checkpoints import (  # noqa: E402
    checkpoint_dict,
    load_optimizer,
    load_weights,
    read_checkpoint,
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tuning_models(tmp_path_factory.mktemp("difix3d") / "models") / "nvidia/difix_ref"


def difix3d_optimizer(net_difix: DifixNet) -> Any:
    """train_difix.py's optimizer, as written there (its skip convolutions' LoRA twice); its
    learning rate and betas are its defaults."""
    layers_to_opt = []
    layers_to_opt += list(net_difix.unet.parameters())
    for n, _p in net_difix.vae.named_parameters():
        if "lora" in n and "vae_skip" in n:
            assert _p.requires_grad
            layers_to_opt.append(_p)
    # Difix3D adds skip_conv_1 ... skip_conv_4 by name (SD-Turbo's VAE has four up blocks); the tiny one fewer.
    for i in range(1, len(net_difix.vae.decoder.up_blocks) + 1):
        layers_to_opt = layers_to_opt + list(getattr(net_difix.vae.decoder, f"skip_conv_{i}").parameters())
    with warnings.catch_warnings():  # torch: "optimizer contains a parameter group with duplicate parameters"
        warnings.simplefilter("ignore")
        return torch.optim.AdamW(layers_to_opt, lr=5e-6, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)


def difix3d_save_ckpt(net_difix: DifixNet, optimizer: Any, outf: Path) -> None:
    """model.py's save_ckpt."""
    sd: dict[str, Any] = {}
    sd["vae_lora_target_modules"] = net_difix.lora_targets
    sd["rank_vae"] = net_difix.lora_rank
    sd["state_dict_unet"] = net_difix.unet.state_dict()
    sd["state_dict_vae"] = {k: v for k, v in net_difix.vae.state_dict().items() if "lora" in k or "skip" in k}
    sd["optimizer"] = optimizer.state_dict()
    torch.save(sd, outf)


def difix3d_load_ckpt_from_state_dict(net_difix: DifixNet, optimizer: Any, pretrained_path: Path) -> None:
    """model.py's load_ckpt_from_state_dict."""
    sd = torch.load(pretrained_path, map_location="cpu")
    if "state_dict_vae" in sd:
        _sd_vae = net_difix.vae.state_dict()
        for k in sd["state_dict_vae"]:
            _sd_vae[k] = sd["state_dict_vae"][k]
        net_difix.vae.load_state_dict(_sd_vae)
    _sd_unet = net_difix.unet.state_dict()
    for k in sd["state_dict_unet"]:
        _sd_unet[k] = sd["state_dict_unet"][k]
    net_difix.unet.load_state_dict(_sd_unet)
    optimizer.load_state_dict(sd["optimizer"])


def trained(base: Path, make_optimizer: Any, steps: int = 2) -> tuple[DifixNet, Any]:
    """A DiFix and its optimizer after `steps` AdamW steps on seeded gradients."""
    net, _ = load_difix(base, 199, 4)
    net.set_train()
    optimizer = make_optimizer(net)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        for p in net.trainable():
            p.grad = torch.randn(p.shape, generator=generator)
        optimizer.step()
    return net, optimizer


def moments(net: DifixNet, optimizer: Any) -> dict[str, float]:
    """`<parameter name>:<step|exp_avg|exp_avg_sq>`: the optimizer's state per parameter (sums)."""
    names = {id(p): n for n, p in net.named_parameters()}
    return {f"{names[id(p)]}:{k}": float(s[k].sum()) for p, s in optimizer.state.items()
            for k in ("step", "exp_avg", "exp_avg_sq")}


def test_a_genfab_checkpoint_resumes_in_difix3d(base: Path, tmp_path: Path) -> None:
    net, optimizer = trained(base, lambda n: torch.optim.AdamW(n.trainable()))
    torch.save(checkpoint_dict(net, optimizer, 2, {}), tmp_path / "model_2.pkl")
    theirs, _ = load_difix(base, 199, 4)
    their_optimizer = difix3d_optimizer(theirs)
    assert len(read_checkpoint(tmp_path / "model_2.pkl")["optimizer"]["param_groups"][0]["params"]) == len(
        their_optimizer.param_groups[0]["params"]) > len(net.trainable())  # Difix3D's repeats included
    difix3d_load_ckpt_from_state_dict(theirs, their_optimizer, tmp_path / "model_2.pkl")
    assert moments(theirs, their_optimizer) == pytest.approx(moments(net, optimizer))
    assert torch.equal(theirs.vae.decoder.skip_conv_1.lora_A["vae_skip"].weight,
                       net.vae.decoder.skip_conv_1.lora_A["vae_skip"].weight)


def test_a_difix3d_checkpoint_resumes_in_genfab(base: Path, tmp_path: Path) -> None:
    net, their_optimizer = trained(base, difix3d_optimizer)
    difix3d_save_ckpt(net, their_optimizer, tmp_path / "model_2.pkl")
    sd = read_checkpoint(tmp_path / "model_2.pkl")
    mine, _ = load_difix(base, 199, 4)
    mine.set_train()
    optimizer = torch.optim.AdamW(mine.trainable(), foreach=False)
    load_weights(mine, sd)
    load_optimizer(optimizer, sd["optimizer"], mine)
    assert moments(mine, optimizer) == pytest.approx(moments(net, their_optimizer))
    assert optimizer.param_groups[0]["foreach"] is False  # how it runs stays genfab's
    for p in mine.trainable():  # and it steps on
        p.grad = torch.ones_like(p)
    optimizer.step()


def test_a_bf16_difix3d_checkpoint_resumes_in_genfabs_fast_path(base: Path, tmp_path: Path) -> None:
    """Difix3D trains in bf16 (`--mixed_precision bf16` casts the whole model, so its AdamW moments are
    bf16); genfab's fast path keeps fp32 weights, channels-last, under fused AdamW, which needs each
    parameter's moments laid out like it (found resuming Difix3D's own checkpoint on the GPU)."""
    net, their_optimizer = trained(base, difix3d_optimizer)
    net.to(torch.bfloat16)
    for state in their_optimizer.state.values():
        for k in ("exp_avg", "exp_avg_sq"):
            state[k] = state[k].to(torch.bfloat16)
    difix3d_save_ckpt(net, their_optimizer, tmp_path / "model_2.pkl")
    sd = read_checkpoint(tmp_path / "model_2.pkl")
    mine, _ = load_difix(base, 199, 4)
    mine.set_train()
    mine.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(mine.trainable(), fused=True)
    load_weights(mine, sd)
    load_optimizer(optimizer, sd["optimizer"], mine)
    convs = [p for p in mine.trainable() if p.dim() == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    for p in mine.trainable():
        for k in ("exp_avg", "exp_avg_sq"):
            moment = optimizer.state[p][k]
            assert moment.dtype == p.dtype == torch.float32 and moment.stride() == p.stride(), k
        p.grad = torch.ones_like(p)
    optimizer.step()
    assert moments(mine, optimizer)


def test_a_fast_path_genfab_checkpoint_resumes_in_difix3ds_bf16_training(base: Path, tmp_path: Path) -> None:
    """genfab's fast path (channels-last weights, fused AdamW) writes a file Difix3D's trainer runs on as
    it runs on its own: torch's default `fused`/`foreach` (a saved group is taken whole, so `fused: True`
    would make Difix3D's AdamW fused) and contiguous moments. Then `--mixed_precision bf16` casts the model
    and accelerate's `prepare` reloads the optimizer state, casting the moments to bf16 (found on the GPU:
    Difix3D's resume of a genfab checkpoint)."""
    def fast(n: DifixNet) -> Any:
        n.to(memory_format=torch.channels_last)
        return torch.optim.AdamW(n.trainable(), fused=True)

    net, optimizer = trained(base, fast)
    torch.save(checkpoint_dict(net, optimizer, 2, {}), tmp_path / "model_2.pkl")
    sd = read_checkpoint(tmp_path / "model_2.pkl")
    group = sd["optimizer"]["param_groups"][0]
    assert (group["fused"], group["foreach"], group["capturable"]) == (None, None, False)
    assert all(v.is_contiguous() for s in sd["optimizer"]["state"].values() for v in s.values() if v.dim() > 1)
    theirs, _ = load_difix(base, 199, 4)
    theirs.set_train()
    their_optimizer = difix3d_optimizer(theirs)
    difix3d_load_ckpt_from_state_dict(theirs, their_optimizer, tmp_path / "model_2.pkl")
    assert their_optimizer.param_groups[0]["fused"] is None
    assert moments(theirs, their_optimizer) == pytest.approx(moments(net, optimizer), rel=1e-5)
    theirs.to(torch.bfloat16)  # train_difix.py: net_difix.to(accelerator.device, dtype=weight_dtype)
    their_optimizer.load_state_dict(their_optimizer.state_dict())  # accelerate's AcceleratedOptimizer
    for p in theirs.trainable():
        assert all(their_optimizer.state[p][k].dtype == torch.bfloat16 for k in ("exp_avg", "exp_avg_sq"))
        p.grad = torch.ones_like(p)
    their_optimizer.step()
    assert float(their_optimizer.state[theirs.trainable()[0]]["step"]) == 3.0


def test_genfab_reads_its_older_checkpoints_and_refuses_another_models(base: Path) -> None:
    net, optimizer = trained(base, lambda n: torch.optim.AdamW(n.trainable()), steps=1)
    mine, _ = load_difix(base, 199, 4)
    again = torch.optim.AdamW(mine.trainable())
    load_optimizer(again, optimizer.state_dict(), mine)  # one entry per parameter: genfab before this change
    assert moments(mine, again) == pytest.approx(moments(net, optimizer))
    other = optimizer.state_dict()
    other["param_groups"][0]["params"] = other["param_groups"][0]["params"][:-3]
    with pytest.raises(ValueError, match="another model or LoRA rank"):
        load_optimizer(again, other, mine)
