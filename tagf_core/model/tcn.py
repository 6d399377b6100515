"""Causal dilated temporal convolution network, used for both streams (ref §1.4).

Level i has dilation 2^i; each convolution is padded by (k−1)·2^i and the trailing padding is cut off
("chomp"), so output frame t only sees input frames ≤ t. With k = 5 and 4 levels the receptive field is
1 + 2·4·(1+2+4+8) = 121 past frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class WeightNormConv1d(nn.Module):
    """Conv1d whose weight is g·v/‖v‖ (norm over all but the output axis), stored as ``weight_g``/``weight_v``.

    Written out instead of ``torch.nn.utils.weight_norm`` (deprecated) with the same parameter names, so the
    reference's state dicts load as they are. Init quirk kept on purpose (ref §1.4, §1.9): the reference's
    xavier init touched only the derived ``weight`` and so had no effect; the effective init is PyTorch's
    default Conv1d init, decomposed into g = ‖w‖ and v = w, exactly as here.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, padding: int) -> None:
        super().__init__()
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation)
        self.padding, self.dilation = padding, dilation
        self.weight_v = nn.Parameter(conv.weight.detach().clone())
        self.weight_g = nn.Parameter(torch.norm_except_dim(conv.weight.detach(), 2, 0))
        self.bias = nn.Parameter(conv.bias.detach().clone())  # type: ignore[union-attr]

    def forward(self, x: Tensor) -> Tensor:
        weight = torch._weight_norm(self.weight_v, self.weight_g, 0)
        return F.conv1d(x, weight, self.bias, padding=self.padding, dilation=self.dilation)


class TemporalBlock(nn.Module):
    """[weight-normed conv → chomp → LeakyReLU → dropout] × 2, plus a residual (1×1 conv if widths differ)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.chomp = (kernel_size - 1) * dilation
        self.conv1 = WeightNormConv1d(in_channels, out_channels, kernel_size, dilation, self.chomp)
        self.conv2 = WeightNormConv1d(out_channels, out_channels, kernel_size, dilation, self.chomp)
        self.dropout = nn.Dropout(dropout)
        self.downsample: nn.Conv1d | None = None
        if in_channels != out_channels:
            self.downsample = nn.Conv1d(in_channels, out_channels, 1)
            # ref §1.4: this conv is not weight-normed, so the reference's xavier(gain √2) init does apply
            nn.init.xavier_uniform_(self.downsample.weight, gain=math.sqrt(2))

    def forward(self, x: Tensor) -> Tensor:
        """x B×C_in×L → B×C_out×L."""
        length = x.shape[-1]
        out = self.dropout(F.leaky_relu(self.conv1(x)[..., :length]))  # chomp: keep only causal outputs
        out = self.dropout(F.leaky_relu(self.conv2(out)[..., :length]))
        residual = x if self.downsample is None else self.downsample(x)
        return F.leaky_relu(out + residual)


class TemporalConvNet(nn.Module):
    """Stack of TemporalBlocks with dilations 1, 2, 4, …: B×in_dim×L → B×channels[-1]×L, causal."""

    def __init__(self, in_dim: int, channels: tuple[int, ...], kernel_size: int = 5, dropout: float = 0.1) -> None:
        super().__init__()
        widths = (in_dim, *channels)
        self.network = nn.Sequential(
            *(
                TemporalBlock(widths[i], widths[i + 1], kernel_size, dilation=2**i, dropout=dropout)
                for i in range(len(channels))
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x)
