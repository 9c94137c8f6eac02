"""Difix3D's checkpoint format: `checkpoints/model_<step>.pkl`, a `torch.save` dict with
`state_dict_unet` (the whole UNet), `state_dict_vae` (the VAE's LoRA and skip-convolution weights),
`vae_lora_target_modules`, `rank_vae` and `optimizer` (Difix3D's `save_ckpt`), so the lab's
`load_ckpt_from_state_dict` and `Difix(pretrained_path=...)` read them. genfab adds `global_step`
and `genfab` (run facts); Difix3D ignores keys it does not know."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from genfab.contract.names import checkpoint_name, checkpoint_step
from genfab.stages.models.difix import DifixNet

REQUIRED = ("state_dict_unet", "state_dict_vae", "vae_lora_target_modules", "rank_vae", "optimizer")

def checkpoint_dict(net: DifixNet, optimizer: torch.optim.Optimizer, step: int, extra: dict[str, Any]
                    ) -> dict[str, Any]:
    return {
        "vae_lora_target_modules": list(net.lora_targets),
        "rank_vae": net.lora_rank,
        "state_dict_unet": {k: v.detach().cpu() for k, v in net.unet.state_dict().items()},
        "state_dict_vae": {k: v.detach().cpu() for k, v in net.vae.state_dict().items() if "lora" in k or "skip" in k},
        "optimizer": optimizer.state_dict(),
        "global_step": step,
        "genfab": extra,
    }


def save_checkpoint(net: DifixNet, optimizer: torch.optim.Optimizer, step: int, folder: Path,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write `model_<step>.pkl` atomically (a reader never sees half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / checkpoint_name(step)
    partial = folder / f".{target.name}.partial"
    torch.save(checkpoint_dict(net, optimizer, step, extra or {}), partial)
    os.replace(partial, target)
    return target


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's dict, checked for Difix3D's keys (ValueError names what is missing)."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which one
        raise ValueError(f"{path.name}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    missing = [k for k in REQUIRED if k not in sd] if isinstance(sd, dict) else list(REQUIRED)
    if missing:
        raise ValueError(f"{path.name}: not a Difix3D checkpoint, missing {', '.join(missing)}")
    return sd


def load_weights(net: DifixNet, sd: dict[str, Any]) -> None:
    """Difix3D's `load_ckpt_from_state_dict`: the checkpoint's UNet and VAE entries over the model's."""
    if list(sd["vae_lora_target_modules"]) != list(net.lora_targets) or int(sd["rank_vae"]) != net.lora_rank:
        raise ValueError(f"checkpoint LoRA (rank {sd['rank_vae']}, {len(sd['vae_lora_target_modules'])} targets) "
                         f"does not match the model (rank {net.lora_rank}, {len(net.lora_targets)} targets)")
    net.unet.load_state_dict({**net.unet.state_dict(), **sd["state_dict_unet"]})
    net.vae.load_state_dict({**net.vae.state_dict(), **sd["state_dict_vae"]})


def resume_step(path: Path, sd: dict[str, Any]) -> int:
    """The step a checkpoint was taken at: its `global_step`, else its file name (Difix3D's files)."""
    step = sd.get("global_step")
    if isinstance(step, int):
        return step
    from_name = checkpoint_step(path.name)
    if from_name is None:
        raise ValueError(f"{path.name}: no global_step and not named model_<step>.pkl")
    return from_name


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` local checkpoints (they are uploaded already)."""
    found = sorted((s, p) for p in folder.glob("model_*.pkl") if (s := checkpoint_step(p.name)) is not None)
    gone = [p for _, p in found[:-keep]] if keep > 0 else [p for _, p in found]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone
