from __future__ import annotations

import torch


class AutoEncoder(torch.nn.Module):
    def __init__(self, chunk_size: int | None = None) -> None:
        super().__init__()
        self.chunk_size = chunk_size
