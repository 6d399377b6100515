"""The VGGish frontend against values computed by hand from vggish-frontend.md (not from the module)."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest

from preprocessing.logmel import (
    count_rows,
    log_mel_rows,
    mel_matrix,
    patch_start_rows,
    patches_for_frames,
)

LN_001 = math.log(0.01)


def hand_mel(frequency_hz: float) -> float:
    return 1127.0 * math.log(1.0 + frequency_hz / 700.0)


def hand_edges(j: int) -> tuple[float, float, float]:
    """(lower, centre, upper) mel edges of band j: edges j, j+1, j+2 of 66 evenly spaced in mel."""
    low, high = hand_mel(125.0), hand_mel(7500.0)
    edge = [low + (high - low) * n / 65 for n in range(66)]
    return edge[j], edge[j + 1], edge[j + 2]


def hand_weight(k: int, j: int) -> float:
    if k == 0:
        return 0.0
    lower, centre, upper = hand_edges(j)
    m = hand_mel(k * 8000.0 / 256)
    return max(0.0, min((m - lower) / (centre - lower), (upper - m) / (upper - centre)))


def hand_row_value(signal: list[float], row: int, band: int) -> float:
    """log-mel value of one (row, band) by an explicit DFT over the 400 windowed samples of that row."""
    frame = signal[160 * row : 160 * row + 400]
    assert len(frame) == 400
    window = [0.5 - 0.5 * math.cos(2 * math.pi * n / 400) for n in range(400)]
    total = 0.0
    for k in range(257):
        weight = hand_weight(k, band)
        if weight == 0.0:
            continue
        spectrum = sum(frame[n] * window[n] * cmath.exp(-2j * math.pi * k * n / 512) for n in range(400))
        total += weight * abs(spectrum)
    return math.log(total + 0.01)


# ---------------------------------------------------------------------------------------------------------
# mel matrix


def test_htk_mel_of_1000_hz_is_1000() -> None:
    # the HTK constants are chosen so that 1000 Hz ↦ ~1000 mel: a check on the formula we hand-compute with
    assert hand_mel(1000.0) == pytest.approx(1000.0, abs=0.01)


@pytest.mark.parametrize(
    ("k", "j", "rounded"),
    # rounded: the same formula worked through once by hand (4 decimals), to guard the test helper itself
    [(5, 0, 0.9477), (5, 1, 0.0523), (6, 1, 0.9331), (27, 17, 0.7348), (112, 45, 0.9367), (239, 63, 0.1081)],
)
def test_mel_matrix_entries_match_the_formula(k: int, j: int, rounded: float) -> None:
    expected = hand_weight(k, j)
    assert expected == pytest.approx(rounded, abs=5e-5)
    assert mel_matrix()[k, j] == pytest.approx(expected, rel=1e-12)


def test_mel_matrix_shape_dc_and_band_limits() -> None:
    matrix = mel_matrix()
    assert matrix.shape == (257, 64)
    assert not matrix[0].any()  # DC contributes nothing
    assert not matrix[:5].any()  # bins ≤ 125 Hz (bin 4 is exactly 125 Hz: weight 0)
    assert not matrix[240:].any()  # bins ≥ 7500 Hz
    # no area normalisation: each triangle peaks near 1 (a bin close to its centre)
    assert matrix.max(axis=0).min() > 0.5
    assert matrix.max() <= 1.0


def test_mel_matrix_entries_everywhere_match_the_formula() -> None:
    expected = np.array([[hand_weight(k, j) for j in range(64)] for k in range(257)])
    np.testing.assert_allclose(mel_matrix(), expected, rtol=0, atol=1e-12)


def test_librosa_mel_is_not_the_vggish_filterbank() -> None:
    """Why librosa is not used: its default (Slaney) filterbank is far off, and even htk=True, norm=None
    builds its triangles linearly in Hz, not in mel, so it is close but not equal."""
    librosa = pytest.importorskip("librosa")
    kwargs = {"sr": 16000, "n_fft": 512, "n_mels": 64, "fmin": 125.0, "fmax": 7500.0}
    default = librosa.filters.mel(**kwargs).T
    htk = librosa.filters.mel(**kwargs, htk=True, norm=None).T
    assert default.shape == htk.shape == mel_matrix().shape
    assert np.abs(default - mel_matrix()).max() > 0.5
    assert np.abs(htk - mel_matrix()).max() > 1e-3


# ---------------------------------------------------------------------------------------------------------
# rows


def test_row_count_drops_incomplete_frames_after_one_second_of_padding() -> None:
    for samples in (0, 1, 399, 400, 3000, 16000, 16001):
        padded = samples + 16000
        assert count_rows(samples) == 1 + (padded - 400) // 160
        assert log_mel_rows(np.zeros(samples)).shape == (count_rows(samples), 64)


def test_rows_match_an_explicit_dft_inside_and_across_the_end_of_the_signal() -> None:
    rng = np.random.default_rng(3)
    waveform = rng.normal(0.0, 0.1, 3000)
    waveform[-1] = 0.3  # edge padding repeats this value; zero padding would not
    padded = list(waveform) + [0.3] * 16000
    rows = log_mel_rows(waveform)
    # row 5 lies inside the signal, row 17 covers samples 2720..3119 (straddles the end), row 30 is pure padding
    for row in (5, 17, 30):
        for band in (0, 20, 63):
            assert rows[row, band] == pytest.approx(hand_row_value(padded, row, band), abs=1e-9), (row, band)


def test_silence_gives_ln_001_in_every_band() -> None:
    rows = log_mel_rows(np.zeros(16000, dtype=np.float32))
    np.testing.assert_array_equal(rows, np.full_like(rows, LN_001))


def test_empty_waveform_is_one_second_of_silence() -> None:
    rows = log_mel_rows(np.zeros(0, dtype=np.float32))
    assert rows.shape == (98, 64)
    np.testing.assert_array_equal(rows, np.full_like(rows, LN_001))


def test_1khz_tone_peaks_in_the_band_centred_nearest_1khz() -> None:
    t = np.arange(16000) / 16000
    rows = log_mel_rows(0.5 * np.sin(2 * np.pi * 1000.0 * t))
    centres_hz = [700.0 * (math.exp(hand_edges(j)[1] / 1127.0) - 1.0) for j in range(64)]
    nearest = min(range(64), key=lambda j: abs(centres_hz[j] - 1000.0))
    inside = rows[: (16000 - 400) // 160 + 1]  # rows whose frame lies wholly in the tone
    assert set(np.argmax(inside, axis=1).tolist()) == {nearest}
    assert inside[:, nearest].min() > 3.0  # far above silence


# ---------------------------------------------------------------------------------------------------------
# patches


@pytest.mark.parametrize(
    ("fps", "indices", "expected"),
    [
        (30.0, [0, 1, 2, 3, 4, 5, 6], [0, 3, 7, 10, 13, 17, 20]),
        (25.0, [0, 1, 2, 250], [0, 4, 8, 1000]),
        (29.97, [1, 2, 3, 100, 1000], [3, 7, 10, 334, 3337]),
        # exact halves round to even, unlike floor(x + 0.5): 2.5→2, 7.5→8, 12.5→12
        (40.0, [1, 3, 5, 7], [2, 8, 12, 18]),
        (8.0, [1, 3], [12, 38]),
    ],
)
def test_patch_start_rows(fps: float, indices: list[int], expected: list[int]) -> None:
    assert patch_start_rows(np.array(indices), fps).tolist() == expected


@pytest.mark.parametrize("fps", [30.0, 29.97, 30000 / 1001, 24000 / 1001, 25.0, 15.0, 12.5, 40.0, 8.0])
def test_patch_start_rows_equal_python_round(fps: float) -> None:
    indices = np.arange(20000)
    assert patch_start_rows(indices, fps).tolist() == [round(int(i) * 100 / fps) for i in indices]


def test_patches_start_at_their_rows_and_repeat_the_last_complete_patch() -> None:
    rows = np.repeat(np.arange(200, dtype=np.float64)[:, None], 64, axis=1)  # row r holds r
    frames = np.array([0, 1, 2, 31, 32, 40])
    patches = patches_for_frames(rows, frames, 30.0)
    assert patches.dtype == np.float16
    assert patches.shape == (6, 96, 64)
    # 200 rows: the last start that fits is 104; frame 31 starts at round(103.33) = 103, frame 32 at 107
    # does not fit, so frames 32 and 40 repeat frame 31's patch (starting at 103, not at 104)
    assert patches[:, 0, 0].tolist() == [0, 3, 7, 103, 103, 103]
    assert patches[:, 95, 0].tolist() == [95, 98, 102, 198, 198, 198]
    np.testing.assert_array_equal(patches[:, :, 0], patches[:, :, 63])


def test_patches_equal_the_float16_rows() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(-2.0, 2.0, (300, 64))
    frames = np.array([0, 5, 17, 60, 61])
    patches = patches_for_frames(rows, frames, 29.97)
    for k, frame in enumerate(frames):
        start = round(int(frame) * 100 / 29.97)
        np.testing.assert_array_equal(patches[k], rows[start : start + 96].astype(np.float16))


def test_silent_video_without_audio_gets_silence_patches() -> None:
    patches = patches_for_frames(log_mel_rows(np.zeros(0)), np.arange(90), 30.0)
    assert patches.shape == (90, 96, 64)
    np.testing.assert_array_equal(patches, np.full(patches.shape, LN_001, dtype=np.float16))


def test_no_frames_gives_an_empty_float16_array() -> None:
    patches = patches_for_frames(np.zeros((100, 64)), np.zeros(0, dtype=np.int64), 30.0)
    assert patches.shape == (0, 96, 64)
    assert patches.dtype == np.float16
