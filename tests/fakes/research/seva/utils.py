"""`seva.utils.load_model` as SEVA's: a local folder holds `weight_name`; returns a module."""

from __future__ import annotations

import os

import torch


class StandInSeva(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))


def load_model(model_version: float = 1.1, pretrained_model_name_or_path: str = "stabilityai/stable-virtual-camera",
               weight_name: str = "model.safetensors", device: str | torch.device = "cuda",
               verbose: bool = False) -> StandInSeva:
    if not os.path.isdir(pretrained_model_name_or_path):
        raise OSError(f"stand-in: {pretrained_model_name_or_path} is not a folder (no hub downloads in tests)")
    if not os.path.isfile(os.path.join(pretrained_model_name_or_path, weight_name)):
        raise FileNotFoundError(os.path.join(pretrained_model_name_or_path, weight_name))
    return StandInSeva()
