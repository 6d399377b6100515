"""The time-aware gate: a per-frame BiLSTM over the M fusion steps scores each step (ref §1.7).

Note (ref §1.12): the BiLSTM's sequence axis is the M = 3 steps of one frame, not time. Its output is
L2-normalised, so a step's score (the feature mean) is bounded by ±1/√D', and softmax(score / 0.1)
keeps every weight within fixed bounds: [0.171, 0.547] for D' = 512, [0.125, 0.636] for D' = 256.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class StepEncoder(nn.Module):
    """BiLSTM over the steps with a learned initial state, residual concat, dropout, Linear, L2 norm.

    embed_dim → BiLSTM (hidden_dim/2 per direction) → [input ‖ output] → Linear(hidden_dim + embed_dim →
    hidden_dim) → unit norm. Sequences N×M×embed_dim → N×M×hidden_dim.
    """

    def __init__(self, embed_dim: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.rnn_dim = hidden_dim // 2
        self.rnn = nn.LSTM(embed_dim, self.rnn_dim, num_layers=1, bidirectional=True, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_dim + embed_dim, hidden_dim)
        # rows 0–1: h0 of both directions, rows 2–3: c0 (ref §1.7)
        self.init_hidden = nn.Parameter(nn.init.xavier_uniform_(torch.empty(4, self.rnn_dim)))

    def forward(self, steps: Tensor) -> Tensor:
        batch = steps.shape[0]
        h0 = self.init_hidden[:2].unsqueeze(1).expand(2, batch, self.rnn_dim).contiguous()
        c0 = self.init_hidden[2:].unsqueeze(1).expand(2, batch, self.rnn_dim).contiguous()
        encoded, _ = self.rnn(steps, (h0, c0))
        return F.normalize(self.linear(self.dropout(torch.cat([steps, encoded], dim=-1))), dim=-1)


class StepGate(nn.Module):
    """Weights the M steps of each frame and sums them: B×L×M×D → (B×L×D fused, B×L×M weights)."""

    def __init__(self, dim: int, hidden_dim: int, temperature: float = 0.1, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = StepEncoder(dim, hidden_dim, dropout)
        self.temperature = temperature

    def forward(self, steps: Tensor) -> tuple[Tensor, Tensor]:
        batch, length, count, dim = steps.shape
        per_frame = steps.reshape(batch * length, count, dim)  # N×M×D: one short sequence per frame
        score = self.encoder(per_frame).mean(dim=-1)  # N×M, parameter-free scoring (ref §1.12)
        weights = F.softmax(score / self.temperature, dim=1)
        # ref §1.7: the weights multiply the un-encoded stack, not the encoder output
        fused = (per_frame * weights.unsqueeze(-1)).sum(dim=1)
        return fused.view(batch, length, dim), weights.view(batch, length, count)
