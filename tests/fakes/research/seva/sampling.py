from __future__ import annotations

from typing import Any


class DiscreteDenoiser:
    def __init__(self, num_idx: int = 1000, device: Any = "cpu") -> None:
        self.num_idx, self.device = num_idx, device
