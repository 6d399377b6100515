"""Audio backbone: VGGish on 96×64 log-mel patches → 128-d embedding (ref §1.3).

Names follow the torchvggish release (``features``, ``embeddings``) so ``vggish.pth`` loads key for key.
The reference drops VGGish's final ReLU and its PCA/quantisation post-processing; so does this.
"""

from __future__ import annotations

from torch import Tensor, nn

EMBEDDING_DIM = 128
PATCH_FRAMES, MEL_BANDS = 96, 64
_LAYOUT = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


class AudioBackbone(nn.Module):
    """VGGish: N×96×64 log-mel patches (not normalised) → N×128."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for item in _LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_DIM),  # ref §1.3: no final ReLU
        )

    def forward(self, patches: Tensor) -> Tensor:
        """patches N×96×64 → N×128."""
        maps = self.features(patches.unsqueeze(1).float())  # N×512×6×4
        # the published weights were trained in TensorFlow's (time, frequency, channel) order
        flat = maps.permute(0, 2, 3, 1).reshape(maps.shape[0], -1)  # N×(6·4·512)
        return self.embeddings(flat)

    def release_groups(self) -> tuple[tuple[str, list[nn.Parameter]], ...]:
        """The three groups the reference releases, in order (ref §3.4): FC3, FC2, FC1."""
        return (
            ("audio.fc3", list(self.embeddings[4].parameters())),
            ("audio.fc2", list(self.embeddings[2].parameters())),
            ("audio.fc1", list(self.embeddings[0].parameters())),
        )
