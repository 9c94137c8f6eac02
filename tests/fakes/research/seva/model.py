"""`seva.model.SGMWrapper` as SEVA's: wraps the network, a torch module."""

from __future__ import annotations

import torch


class SGMWrapper(torch.nn.Module):
    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module
