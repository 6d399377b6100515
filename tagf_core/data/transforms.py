"""Face-window transforms: one random crop and flip per window in training, a centre crop in eval (ref §2.6).

Both end with ToTensor (/255) and Normalize(0.5, 0.5), so pixel values land in [−1, 1] and a black
(zero-padded) frame becomes −1 everywhere, as in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tagf_core.data.layout import FACE_SIZE


@dataclass(frozen=True)
class CropFlip:
    """Where to crop a window's faces and whether to mirror them; one per window, shared by all its frames."""

    top: int
    left: int
    flip: bool


def _check_sizes(crop_size: int, face_size: int) -> None:
    if not 1 <= crop_size <= face_size:
        raise ValueError(f"crop_size {crop_size} must be between 1 and face_size {face_size}")


def sample_crop_flip(
    *, crop_size: int, face_size: int = FACE_SIZE, generator: torch.Generator | None = None
) -> CropFlip:
    """Draw a training crop: offsets uniform in [0, face_size − crop_size] inclusive, flip with p = 0.5.

    ``generator`` supplies the randomness; None uses torch's global RNG.
    """
    _check_sizes(crop_size, face_size)
    top, left = torch.randint(0, face_size - crop_size + 1, (2,), generator=generator).tolist()
    flip = bool(torch.rand((), generator=generator) < 0.5)
    return CropFlip(top=top, left=left, flip=flip)


def centre_crop(*, crop_size: int, face_size: int = FACE_SIZE) -> CropFlip:
    """The eval crop: centred, no flip."""
    _check_sizes(crop_size, face_size)
    # torchvision's CenterCrop rounds (H − h)/2 the same way; exact 4 for the default 48/40
    offset = int(round((face_size - crop_size) / 2.0))
    return CropFlip(top=offset, left=offset, flip=False)


def apply_crop_flip(frames: np.ndarray, crop: CropFlip, *, crop_size: int) -> Tensor:
    """Crop, mirror and normalise a window of faces.

    Args:
        frames: L×H×W×3 uint8 RGB faces.
        crop: the crop and flip shared by all L frames (ref §2.6).

    Returns:
        L×3×crop_size×crop_size float32 in [−1, 1].
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected L×H×W×3 uint8 frames, got {frames.dtype} {frames.shape}")
    patch = frames[:, crop.top : crop.top + crop_size, crop.left : crop.left + crop_size]  # L×h×w×3
    if patch.shape[1:3] != (crop_size, crop_size):
        raise ValueError(f"crop {crop} of size {crop_size} does not fit {frames.shape[1]}×{frames.shape[2]} faces")
    if crop.flip:
        patch = patch[:, :, ::-1]  # ref §2.6: the flip comes after the crop
    video = torch.from_numpy(np.ascontiguousarray(patch)).permute(0, 3, 1, 2)  # L×3×h×w
    # the same two steps as torchvision's ToTensor and Normalize(mean=0.5, std=0.5)
    return video.float().div(255).sub(0.5).div(0.5)


def transform_video(
    frames: np.ndarray,
    *,
    train: bool,
    crop_size: int,
    face_size: int = FACE_SIZE,
    generator: torch.Generator | None = None,
) -> Tensor:
    """L×face×face×3 uint8 → L×3×crop×crop float32 in [−1, 1]: random crop + flip if ``train``, else centre crop."""
    if frames.ndim != 4 or frames.shape[1:3] != (face_size, face_size):
        raise ValueError(f"expected L×{face_size}×{face_size}×3 frames, got {frames.shape}")
    if train:
        crop = sample_crop_flip(crop_size=crop_size, face_size=face_size, generator=generator)
    else:
        crop = centre_crop(crop_size=crop_size, face_size=face_size)
    return apply_crop_flip(frames, crop, crop_size=crop_size)
