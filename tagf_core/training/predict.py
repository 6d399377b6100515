"""Predictions for arrays that are not part of a preprocessed dataset (e.g. any video a user gives)."""

from __future__ import annotations

import numpy as np
import torch

from tagf_core.data.transforms import transform_video
from tagf_core.data.windows import average_window_predictions, trial_windows
from tagf_core.model import TAGFModel


def predict_arrays(
    model: TAGFModel,
    faces: np.ndarray,
    logmel: np.ndarray,
    *,
    hop_len: int = 200,
    batch_size: int = 12,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Per-frame predictions (T,) of an eval-mode model for faces T×48×48×3 uint8 and logmel T×96×64.

    Windows, padding, centre crop and overlap averaging exactly as for a validation trial (ref §2.5–2.7).
    """
    length = model.window_len
    windows = trial_windows("video", len(faces), length, hop_len)
    rows = []
    model.eval().to(device)
    with torch.no_grad():
        for first in range(0, len(windows), batch_size):
            chunk = windows[first : first + batch_size]
            video = torch.stack(
                [transform_video(_padded(faces, w.start, w.length, length), train=False) for w in chunk]
            )
            audio = torch.stack(
                [torch.from_numpy(_padded(logmel, w.start, w.length, length).astype(np.float32)) for w in chunk]
            )
            rows.append(model(video=video.to(device), logmel=audio.to(device))[..., 0].cpu().numpy())
    return average_window_predictions(np.concatenate(rows), windows)["video"]


def _padded(array: np.ndarray, start: int, count: int, length: int) -> np.ndarray:
    """``count`` frames from ``start``, zero-padded to ``length`` (black faces, silent patches; ref §2.5)."""
    window = np.zeros((length, *array.shape[1:]), dtype=array.dtype)
    window[:count] = array[start : start + count]
    return window
