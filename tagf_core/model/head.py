"""Regression head: 384 → 256 → BN → LeakyReLU → 1 → tanh (ref §1.8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RegressionHead(nn.Module):
    """B×L×in_dim → B×L×1 in (−1, 1); one emotion per model."""

    def __init__(self, in_dim: int = 384, hidden_dim: int = 256) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.norm = nn.BatchNorm1d(hidden_dim)
        self.out = nn.Linear(hidden_dim, 1)

    def forward(self, fused: Tensor) -> Tensor:
        hidden = self.norm(self.hidden(fused).transpose(1, 2)).transpose(1, 2)  # BN over channels: B×256×L
        return torch.tanh(self.out(F.leaky_relu(hidden, 0.01)))
