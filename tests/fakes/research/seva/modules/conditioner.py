from __future__ import annotations

import torch


class CLIPConditioner(torch.nn.Module):
    pass
