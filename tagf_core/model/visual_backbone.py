"""Visual backbone: InsightFace IR-50 ("ir" mode) on 40×40 face crops → L2-normalised 512-d embedding.

Ref §1.2. The stock output layer expects 7×7 maps (112 px faces); TAGF feeds 40×40 crops, so the body's
stage strides are 1, 2, 2, 2 (40 → 40 → 20 → 10 → 5) and the output layer is sized for 5×5.
Submodule names follow the InsightFace release (``input_layer``, ``body``, ``output_layer``) so that
``res50_ir_0.887.pth`` loads key for key.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

EMBEDDING_DIM = 512
_OUTPUT_SIDE = 5  # 40 px after strides 1, 2, 2, 2
# (input channels, depth, units, stride of the first unit) per stage; ref §1.2
_STAGES = ((64, 64, 3, 1), (64, 128, 4, 2), (128, 256, 14, 2), (256, 512, 3, 2))


class BottleneckIR(nn.Module):
    """One IR unit: BN → conv3×3 → PReLU → conv3×3(stride) → BN, plus a shortcut."""

    def __init__(self, in_channels: int, depth: int, stride: int) -> None:
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)  # identity, subsampled when stride 2
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, (1, 1), stride, bias=False), nn.BatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, (3, 3), (1, 1), 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class VisualBackbone(nn.Module):
    """IR-50 on N×3×40×40 faces in [−1, 1] → N×512 unit-norm embeddings."""

    def __init__(self) -> None:
        super().__init__()
        # registration order matters: the reference indexes list(parameters()) for gradual release
        # (ref §3.4: 0–3 stem, 4–9 output layer, 10–186 body)
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, (3, 3), 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(EMBEDDING_DIM),
            nn.Dropout(0.4),
            nn.Flatten(),
            nn.Linear(EMBEDDING_DIM * _OUTPUT_SIDE * _OUTPUT_SIDE, EMBEDDING_DIM),
            nn.BatchNorm1d(EMBEDDING_DIM),
        )
        units = []
        for in_channels, depth, count, stride in _STAGES:
            units.append(BottleneckIR(in_channels, depth, stride))
            units.extend(BottleneckIR(depth, depth, 1) for _ in range(count - 1))
        self.body = nn.Sequential(*units)
        # ref §1.2: the output layer starts xavier-initialised (BN at 1/0) before weights are loaded
        linear = self.output_layer[3]
        assert isinstance(linear, nn.Linear)
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)

    def forward(self, faces: Tensor) -> Tensor:
        """faces N×3×40×40 → N×512, each row of unit L2 norm."""
        x = self.output_layer(self.body(self.input_layer(faces)))
        # ref §1.2: InsightFace's l2_norm divides by the norm with no epsilon (kept for exact outputs)
        return x / torch.norm(x, 2, 1, True)

    def release_groups(self) -> tuple[tuple[str, list[nn.Parameter]], ...]:
        """The three groups the reference releases, in order (ref §3.4): output layer, stage 4, and the
        last three units of stage 3 (body units 21–23 and 18–20)."""
        body = list(self.body)
        return (
            ("visual.output_layer", list(self.output_layer.parameters())),
            ("visual.stage4", [p for unit in body[21:24] for p in unit.parameters()]),
            ("visual.stage3_last3", [p for unit in body[18:21] for p in unit.parameters()]),
        )
