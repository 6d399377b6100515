from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagf_core.data.windows import (
    Window,
    average_window_predictions,
    list_windows,
    trial_windows,
    window_starts,
)
from tagf_core.errors import TagfError


@pytest.mark.parametrize(
    ("num_frames", "starts"),
    [
        (1, [0]),
        (299, [0]),
        (300, [0]),
        (301, [0, 1]),  # ref §2.5: tail window 1–300
        (500, [0, 200]),  # the second window ends exactly on frame 499: no tail
        (1000, [0, 200, 400, 600, 700]),
    ],
)
def test_reference_window_starts(num_frames: int, starts: list[int]) -> None:
    assert window_starts(num_frames, 300, 200) == starts
    windows = trial_windows("t", num_frames, 300, 200)
    assert windows == [Window("t", s, min(num_frames, 300)) for s in starts]


@given(
    num_frames=st.integers(1, 3000),
    window_len=st.integers(1, 400),
    hop_fraction=st.floats(0, 1),
)
def test_windows_cover_every_frame(num_frames: int, window_len: int, hop_fraction: float) -> None:
    hop_len = max(1, round(hop_fraction * window_len))
    windows = trial_windows("t", num_frames, window_len, hop_len)
    starts = [w.start for w in windows]
    assert starts == sorted(set(starts))
    assert starts[0] == 0
    assert windows[-1].end == num_frames
    assert all(w.length == min(num_frames, window_len) for w in windows)
    covered = np.zeros(num_frames, dtype=bool)
    for w in windows:
        covered[w.start : w.end] = True
    assert covered.all()
    # every start except a tail window lies on the hop grid
    assert all(s % hop_len == 0 for s in starts[:-1])


def test_hop_longer_than_window_is_refused() -> None:
    with pytest.raises(TagfError, match="hop_len 400 is larger than window_len 300"):
        window_starts(1000, 300, 400)


def test_list_windows_keeps_trial_order() -> None:
    windows = list_windows({"b": 5, "a": 2}, 3, 2)
    assert windows == [Window("b", 0, 3), Window("b", 2, 3), Window("a", 0, 2)]
    assert list_windows([("b", 5), ("a", 2)], 3, 2) == windows


def test_overlap_averaging_by_hand() -> None:
    windows = [
        Window("even", 0, 3),  # T=5, L=3, hop 2: windows 0–2 and 2–4 share frame 2
        Window("even", 2, 3),
        Window("tail", 0, 3),  # T=4: window 0–2 plus tail 1–3
        Window("tail", 1, 3),
        Window("short", 0, 2),  # T=2 < L: the third value is padding and must be ignored
    ]
    predictions = np.array([[1, 2, 3], [10, 20, 30], [1, 2, 3], [4, 5, 6], [7, 8, 999]], dtype=np.float32)
    frames = average_window_predictions(predictions, windows)
    assert list(frames) == ["even", "tail", "short"]
    np.testing.assert_array_equal(frames["even"], [1, 2, 6.5, 20, 30])
    np.testing.assert_array_equal(frames["tail"], [1, 3, 4, 6])
    np.testing.assert_array_equal(frames["short"], [7, 8])


def test_overlap_averaging_keeps_a_feature_axis() -> None:
    windows = [Window("t", 0, 2), Window("t", 1, 2)]
    predictions = np.array([[[1, -1], [2, -2]], [[4, -4], [6, -6]]], dtype=np.float32)  # N×L×D
    np.testing.assert_array_equal(average_window_predictions(predictions, windows)["t"], [[1, -1], [3, -3], [6, -6]])


def test_overlap_averaging_rejects_a_count_mismatch_and_gaps() -> None:
    with pytest.raises(ValueError, match="do not match 2 windows"):
        average_window_predictions(np.zeros((3, 4)), [Window("t", 0, 4), Window("t", 2, 4)])
    with pytest.raises(ValueError, match="frame 2 is covered by no window"):
        average_window_predictions(np.zeros((2, 2)), [Window("t", 0, 2), Window("t", 3, 2)])


def test_folds_and_windows_import_without_torch() -> None:
    # STYLE: the CLI and the config stay instant; only transforms and dataset may pull in torch
    code = "import sys, tagf_core.data.folds, tagf_core.data.windows; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
