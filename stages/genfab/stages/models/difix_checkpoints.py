"""Difix3D's checkpoint format: `checkpoints/model_<step>.pkl`, a `torch.save` dict with
`state_dict_unet` (the whole UNet), `state_dict_vae` (the VAE's LoRA and skip-convolution weights),
`vae_lora_target_modules`, `rank_vae` and `optimizer` (Difix3D's `save_ckpt`), so the lab's
`load_ckpt_from_state_dict` and `Difix(pretrained_path=...)` read them. genfab adds `global_step`
and `genfab` (run facts); Difix3D ignores keys it does not know.

The optimizer state goes both ways too. Difix3D's AdamW lists the skip convolutions' LoRA tensors
twice (`DifixNet.difix3d_order`), so its state dict has more entries than parameters, numbered by
where each first appears; `optimizer.load_state_dict` refuses any other length. genfab trains each
parameter once (`DifixNet.trainable`) and converts at this boundary only: it writes Difix3D's layout
(`to_difix3d`) and reads Difix3D's, or its own older one (`load_optimizer`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from genfab.contract.names import checkpoint_name, checkpoint_step
from genfab.stages.models.difix import DifixNet

REQUIRED = ("state_dict_unet", "state_dict_vae", "vae_lora_target_modules", "rank_vae", "optimizer")

RUNTIME_DEFAULTS: dict[str, Any] = {"fused": None, "foreach": None, "capturable": False, "differentiable": False}
"""How an optimizer runs, not what it learnt: kept from the resuming optimizer, never from the file. genfab
writes torch's defaults for them, because `torch.optim.Optimizer.load_state_dict` (Difix3D's resume) takes
a saved group whole: genfab's `fused: True` would make Difix3D's AdamW fused over its own parameters."""
RUNTIME_KEYS = tuple(RUNTIME_DEFAULTS)


def _positions(net: DifixNet) -> list[int]:
    """For each entry of Difix3D's list, the index of its parameter in genfab's (`trainable`)."""
    index = {id(p): i for i, p in enumerate(net.trainable())}
    return [index[id(p)] for p in net.difix3d_order()]


def to_difix3d(state: dict[str, Any], net: DifixNet) -> dict[str, Any]:
    """genfab's optimizer state dict (one group over `trainable`) in Difix3D's layout."""
    (group,) = state["param_groups"]
    positions = _positions(net)
    first: dict[int, int] = {}
    for j, i in enumerate(positions):
        first.setdefault(i, j)  # torch numbers a parameter by its first place in the list
    return {"state": {first[i]: _portable(v) for i, v in state["state"].items()},
            "param_groups": [{**group, **RUNTIME_DEFAULTS, "params": [first[i] for i in positions]}]}


def _portable(state: dict[str, Any]) -> dict[str, Any]:
    """One parameter's moments as any reader lays out its weights: contiguous. `torch.save` keeps strides,
    and the fast path's channels-last moments, loaded by a reader whose weights are contiguous, would
    differ from them in layout (which fused AdamW refuses)."""
    return {k: v.contiguous() if torch.is_tensor(v) else v for k, v in state.items()}


def load_optimizer(optimizer: torch.optim.Optimizer, saved: dict[str, Any], net: DifixNet) -> None:
    """Restore a checkpoint's optimizer state, written in Difix3D's layout (Difix3D, genfab) or
    genfab's older one (each parameter once), into genfab's optimizer over `net.trainable()`."""
    groups = saved.get("param_groups") or []
    unique = len(net.trainable())
    if len(groups) != 1:
        raise ValueError(f"checkpoint optimizer has {len(groups)} parameter groups; Difix3D and genfab use one")
    ids = groups[0]["params"]
    positions = _positions(net)
    if len(ids) == len(positions):  # Difix3D's layout: map each saved id to the parameter at its place
        to_mine: dict[int, int] = {}
        for saved_id, i in zip(ids, positions, strict=True):
            if to_mine.setdefault(saved_id, i) != i:
                raise ValueError("checkpoint optimizer layout is not Difix3D's: one state serves two parameters")
        state = {to_mine[k]: v for k, v in saved["state"].items()}
    elif len(ids) == unique:
        state = {ids.index(k): v for k, v in saved["state"].items()}
    else:
        raise ValueError(f"checkpoint optimizer holds {len(ids)} parameters; this model trains {unique} "
                         f"({len(positions)} in Difix3D's list): another model or LoRA rank")
    current = optimizer.state_dict()["param_groups"][0]
    group = {**groups[0], **{k: current[k] for k in RUNTIME_KEYS if k in current}, "params": list(range(unique))}
    optimizer.load_state_dict({"state": state, "param_groups": [group]})
    like_parameters(optimizer)


def like_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Each parameter's moments in its dtype, device and memory layout. `load_state_dict` casts dtype and
    device only: a checkpoint's moments are contiguous (and bf16 where Difix3D trained in bf16), while
    the fast path's convolution weights are channels-last, and fused AdamW needs all four tensors of a
    parameter (weight, gradient, both moments) laid out alike."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == p.shape:
                    state[key] = torch.empty_like(p).copy_(value)


def checkpoint_dict(net: DifixNet, optimizer: torch.optim.Optimizer, step: int, extra: dict[str, Any]
                    ) -> dict[str, Any]:
    return {
        "vae_lora_target_modules": list(net.lora_targets),
        "rank_vae": net.lora_rank,
        "state_dict_unet": {k: v.detach().cpu() for k, v in net.unet.state_dict().items()},
        "state_dict_vae": {k: v.detach().cpu() for k, v in net.vae.state_dict().items() if "lora" in k or "skip" in k},
        "optimizer": to_difix3d(optimizer.state_dict(), net),
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
