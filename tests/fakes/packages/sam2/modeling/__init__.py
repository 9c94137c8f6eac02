"""Stand-in of sam2.modeling: every class a config names takes its arguments and keeps them."""

from __future__ import annotations

from typing import Any

import torch


class Component(torch.nn.Module):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs
