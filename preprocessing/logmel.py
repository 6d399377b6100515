"""The VGGish log-mel frontend, exactly as the audio backbone's weights expect it (ref §1.3, vggish-frontend.md).

16 kHz mono waveform → one 64-band log-mel row every 10 ms → one 96-row (0.96 s) patch per video frame.

Everything is computed in float64 and only the patches handed to the caller are float16, because that
is what the reference stores (ref §2.2 step 4). librosa's mel filterbank is deliberately not used: even
with ``htk=True, norm=None`` its triangles are linear in Hz, not in mel, and it does not zero the DC bin,
so it differs from the filterbank VGGish was trained on.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
WINDOW_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms, so 100 rows per second
FFT_LENGTH = 512  # next power of two above the window
SPECTROGRAM_BINS = FFT_LENGTH // 2 + 1  # 257
MEL_BANDS = 64
MEL_LOW_HZ = 125.0
MEL_HIGH_HZ = 7500.0
LOG_OFFSET = 0.01
PAD_SECONDS = 1.0  # ref §1.3: the waveform is edge-padded by 1 s at the end before framing
PATCH_ROWS = 96  # 0.96 s
ROWS_PER_SECOND = SAMPLE_RATE / HOP_LENGTH  # 100.0

SILENCE_LOG = float(np.log(LOG_OFFSET))  # ≈ −4.605: what every band holds for digital silence

# Frames per FFT chunk: bounds the temporary (chunk × 512 complex) memory for a 20-minute trial.
_FRAMES_PER_CHUNK = 8192


def hertz_to_mel(frequency_hz: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """HTK mel scale: ``1127 · ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(frequency_hz, dtype=np.float64) / 700.0)


@cache
def _mel_matrix_cached() -> npt.NDArray[np.float64]:
    bin_mel = hertz_to_mel(np.arange(SPECTROGRAM_BINS) * (SAMPLE_RATE / 2) / (SPECTROGRAM_BINS - 1))  # (257,)
    edges = np.linspace(hertz_to_mel(MEL_LOW_HZ), hertz_to_mel(MEL_HIGH_HZ), MEL_BANDS + 2)  # (66,)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # each (64,)
    # triangles linear in mel, evaluated for every (bin, band) pair: (257, 1) against (64,) → (257, 64)
    rising = (bin_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bin_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # the DC bin contributes to no band, as in VGGish's mel_features; with a 125 Hz lower edge the triangles
    # already give it 0, the explicit zero keeps the spec true if the edges ever change
    weights[0, :] = 0.0
    weights.setflags(write=False)
    return weights


def mel_matrix() -> npt.NDArray[np.float64]:
    """The VGGish mel filterbank: float64 257×64, bin k of the 512-FFT (k·31.25 Hz) → mel band j.

    HTK mel, 66 edges evenly spaced in mel between 125 and 7500 Hz, triangles linear in mel,
    DC bin zero, no area normalisation. Returns a fresh writable copy.
    """
    return _mel_matrix_cached().copy()


@cache
def _periodic_hann() -> npt.NDArray[np.float64]:
    # periodic (not symmetric np.hanning): w[n] = 0.5 − 0.5·cos(2πn/400), n = 0..399
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WINDOW_LENGTH) / WINDOW_LENGTH)
    window.setflags(write=False)
    return window


def count_rows(num_samples: int) -> int:
    """Number of log-mel rows ``log_mel_rows`` returns for a waveform of ``num_samples`` samples."""
    padded = max(num_samples, 0) + int(PAD_SECONDS * SAMPLE_RATE)
    return 1 + (padded - WINDOW_LENGTH) // HOP_LENGTH


def log_mel_rows(waveform_16k: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Log-mel rows of a 16 kHz mono waveform: float (N,) in [−1, 1] → float64 n_rows×64.

    The waveform is edge-padded by 1 s at the end (repeating the last sample; an empty waveform is
    treated as silence), framed without centring into 400-sample periodic-Hann frames every 160
    samples (incomplete frames dropped), and each row is ``ln(|rfft_512(frame)| @ mel_matrix() + 0.01)``.
    ``n_rows == count_rows(N)`` and is always at least 98, so at least one complete 96-row patch exists.
    """
    samples = np.asarray(waveform_16k).reshape(-1)
    pad = int(PAD_SECONDS * SAMPLE_RATE)
    padded = np.empty(samples.size + pad, dtype=np.float64)  # (N + 16000,), the only float64 copy
    padded[: samples.size] = samples
    # ref §1.3: np.pad(mode="edge") repeats the last sample; with no samples there is nothing to repeat,
    # so a missing audio track becomes 1 s of silence rather than a crash
    padded[samples.size :] = padded[samples.size - 1] if samples.size else 0.0

    n_rows = count_rows(samples.size)
    frames = np.lib.stride_tricks.sliding_window_view(padded, WINDOW_LENGTH)[::HOP_LENGTH][:n_rows]  # n_rows×400 view
    window = _periodic_hann()
    mel = _mel_matrix_cached()
    rows = np.empty((n_rows, MEL_BANDS), dtype=np.float64)
    for start in range(0, n_rows, _FRAMES_PER_CHUNK):
        chunk = frames[start : start + _FRAMES_PER_CHUNK] * window  # chunk×400
        magnitude = np.abs(np.fft.rfft(chunk, n=FFT_LENGTH, axis=1))  # chunk×257, |X| not |X|²
        rows[start : start + chunk.shape[0]] = np.log(magnitude @ mel + LOG_OFFSET)  # chunk×64
    return rows


def patch_start_rows(frame_indices: npt.ArrayLike, fps: float) -> npt.NDArray[np.int64]:
    """First log-mel row of each video frame's patch: ``round(i · 100 / fps)``, half to even.

    ``frame_indices``: int (T,) 0-based video frame numbers → int64 (T,).
    ``np.rint`` on the same float64 quotient gives exactly Python's ``round`` (both round the double
    half to even), which the tests check against ``round`` frame by frame.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    indices = np.asarray(frame_indices, dtype=np.int64)
    # i·100 is an exact integer and is converted to float64 before the division, as Python's int / float does
    return np.rint((indices * 100).astype(np.float64) / float(fps)).astype(np.int64)


def patches_for_frames(
    rows: npt.NDArray[np.floating], frame_indices: npt.ArrayLike, fps: float
) -> npt.NDArray[np.float16]:
    """One 96-row log-mel patch per kept video frame: rows n_rows×64, frame_indices int (T,) → float16 T×96×64.

    The patch of frame i starts at row ``round(i · 100 / fps)`` (time i/fps) and looks 0.96 s ahead.
    Frames whose patch would run past the last row get the last *complete* patch, i.e. the patch of
    the last frame whose patch fits (ref §1.3: the reference repeats the last entry of its patch list).

    The output is built in float16 directly (T can be 30 000 frames): only the rows are cast, never a
    T×96×64 float64 array.
    """
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != MEL_BANDS:
        raise ValueError(f"rows must be n_rows×{MEL_BANDS}, got shape {rows.shape}")
    n_rows = rows.shape[0]
    if n_rows < PATCH_ROWS:
        raise ValueError(f"need at least {PATCH_ROWS} rows for one patch, got {n_rows} (use log_mel_rows)")
    indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    if indices.size and indices.min() < 0:
        raise ValueError("frame indices must be non-negative")

    starts = patch_start_rows(indices, fps)  # (T,)
    last_start = n_rows - PATCH_ROWS
    overflow = starts > last_start
    if overflow.any():
        # starts grow with i, so the frames with a complete patch are a prefix 0..last_complete_frame
        first_beyond = _first_frame_beyond(last_start, fps, int(indices.max()))
        starts[overflow] = patch_start_rows(np.array([first_beyond - 1]), fps)[0]

    rows16 = rows.astype(np.float16)  # n_rows×64, cast once
    patches = np.empty((indices.size, PATCH_ROWS, MEL_BANDS), dtype=np.float16)  # T×96×64
    for offset in range(PATCH_ROWS):
        patches[:, offset, :] = rows16[starts + offset]  # gather T rows at a time: memory stays at the output
    return patches


def _first_frame_beyond(last_start: int, fps: float, max_index: int) -> int:
    """Smallest frame index whose patch start exceeds ``last_start`` (frame 0 always fits)."""
    # candidate from the continuous formula, then settle on the exact boundary with the same rounding
    guess = max(1, int(np.floor((last_start + 0.5) * fps / 100.0)))
    while guess > 1 and patch_start_rows(np.array([guess - 1]), fps)[0] > last_start:
        guess -= 1
    while patch_start_rows(np.array([guess]), fps)[0] <= last_start:
        guess += 1
    assert guess <= max_index + 1
    return guess
