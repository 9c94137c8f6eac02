"""Whether this machine has a GPU the stages' torch can use, without importing torch (the control
plane never does): the driver's device files. A wrong yes costs nothing (the stage checks again and
fails with the same line); CUDA_VISIBLE_DEVICES empty or -1 hides every GPU, as it does for torch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")
"""NVIDIA's driver; ROCm's (torch.cuda runs on it); WSL's GPU paravirtualisation."""


def cuda_visible(environ: Mapping[str, str], files: tuple[str, ...] = DRIVER_FILES) -> bool:
    if environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    return any(Path(f).exists() for f in files)
