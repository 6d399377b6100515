"""Fixed-length windows over a trial and the overlap-averaging that turns them back into frames. Torch-free.

Ref §2.5: windows of L = ``window_len`` frames start every ``hop_len`` frames, plus a tail window that ends
on the last frame; a trial shorter than L is one zero-padded window. Train, validate and extra trials use
the same windowing. At evaluation the per-window predictions are averaged over overlapping frames
(ref §2.7, §3.5).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tagf_core.errors import TagfError


@dataclass(frozen=True)
class Window:
    """Frames ``start … start + length − 1`` of ``trial``.

    ``length`` is the number of real frames: the window length L, or T for a trial shorter than L, whose
    window is then zero-padded to L.
    """

    trial: str
    start: int
    length: int

    @property
    def end(self) -> int:
        """One past the last real frame."""
        return self.start + self.length


def check_window_args(window_len: int, hop_len: int) -> None:
    """Raise TagfError unless 1 ≤ ``hop_len`` ≤ ``window_len``."""
    if window_len < 1 or hop_len < 1:
        raise TagfError(f"window_len {window_len} and hop_len {hop_len} must both be at least 1")
    if hop_len > window_len:
        # the reference never uses it (300/200); a larger hop would leave frames no window covers
        raise TagfError(
            f"hop_len {hop_len} is larger than window_len {window_len}: frames between windows would be skipped"
        )


def window_starts(num_frames: int, window_len: int, hop_len: int) -> list[int]:
    """Start frames of the windows over a trial of ``num_frames`` frames (ref §2.5).

    T ≥ L: 0, hop, 2·hop, … for ⌊(T−L)/hop⌋+1 windows, plus a tail window at T−L if the last one stops
    short of frame T−1 (T=301 → [0, 1]; T=1000 → [0, 200, 400, 600, 700]). T < L: [0].
    """
    check_window_args(window_len, hop_len)
    if num_frames < 1:
        raise TagfError(f"a trial needs at least one frame, got {num_frames}")
    if num_frames < window_len:
        return [0]
    starts = [i * hop_len for i in range((num_frames - window_len) // hop_len + 1)]
    if starts[-1] + window_len < num_frames:
        starts.append(num_frames - window_len)
    return starts


def trial_windows(trial: str, num_frames: int, window_len: int, hop_len: int) -> list[Window]:
    """The windows of one trial, in start order."""
    length = min(num_frames, window_len)
    return [Window(trial, start, length) for start in window_starts(num_frames, window_len, hop_len)]


def list_windows(
    trial_lengths: Mapping[str, int] | Iterable[tuple[str, int]], window_len: int, hop_len: int
) -> list[Window]:
    """The windows of every trial, trial by trial in the given order, each trial's windows in start order."""
    items = trial_lengths.items() if isinstance(trial_lengths, Mapping) else trial_lengths
    return [window for trial, num_frames in items for window in trial_windows(trial, num_frames, window_len, hop_len)]


def average_window_predictions(predictions: np.ndarray, windows: Sequence[Window]) -> dict[str, np.ndarray]:
    """Per-frame predictions of each trial: the arithmetic mean over the windows covering the frame (ref §2.7).

    Args:
        predictions: N×L or N×L×D, one row per window, in the order of ``windows``. Padded frames
            (index ≥ ``window.length``) are ignored.
        windows: the N windows; together they must cover every frame of each trial they name.

    Returns:
        trial → T (or T×D) float64 array, T being the end of the trial's last window; trials in first-seen order.
    """
    predictions = np.asarray(predictions)
    if predictions.ndim < 2 or predictions.shape[0] != len(windows):
        raise ValueError(f"predictions {predictions.shape} do not match {len(windows)} windows (expected N×L[×D])")
    num_frames: dict[str, int] = {}
    for window in windows:
        num_frames[window.trial] = max(num_frames.get(window.trial, 0), window.end)
    feature_shape = predictions.shape[2:]
    sums = {trial: np.zeros((t, *feature_shape), dtype=np.float64) for trial, t in num_frames.items()}
    counts = {trial: np.zeros(t, dtype=np.int64) for trial, t in num_frames.items()}
    for prediction, window in zip(predictions, windows, strict=True):
        if window.length > prediction.shape[0]:
            raise ValueError(f"window {window} is longer than its prediction row ({prediction.shape[0]} frames)")
        sums[window.trial][window.start : window.end] += prediction[: window.length]
        counts[window.trial][window.start : window.end] += 1
    averaged = {}
    for trial, count in counts.items():
        if not count.all():
            raise ValueError(f"trial {trial!r}: frame {int(np.argmin(count))} is covered by no window")
        averaged[trial] = sums[trial] / count.reshape(-1, *([1] * len(feature_shape)))
    return averaged
