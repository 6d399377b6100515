"""Valence/arousal curves per video frame, which frames are annotated, and the annotation file format.

Real Aff-Wild2 annotations are smooth traces in [-1, 1] with ``-5,-5`` rows where no annotation exists.
Here each emotion is a per-trial offset plus a few slow sinusoids, clipped to [-1, 1], and the ``-5`` rows
come in three blocks: at the start, in the middle (the block that checks preprocessing keeps labels and
frames aligned after dropping rows) and at the end. These curves are what a person feels;
``tagf_synth.person`` lets face and voice depart from them and writes the mean of the two as the annotation.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

ANNOTATION_HEADER = "valence,arousal"
UNANNOTATED_ROW = "-5,-5"
DECIMALS = 3  # the official files use a handful of decimals; 3 keeps files small and values exact enough

# Frequencies of the sinusoids, in Hz: periods from about 2 s to 17 s, so a trial of a few seconds
# still moves while a 12 s trial looks like the slow drift of real annotations.
_SLOWEST_HZ = 0.06
_FASTEST_HZ = 0.45
_COMPONENTS = 3
_OFFSET = 0.35  # per-trial offset of each emotion, uniform in ±this
_SWING = (0.5, 0.8)  # total amplitude of the sinusoids: curves use most of [-1, 1]


def va_curves(rng: np.random.Generator, frames: int, fps: Fraction) -> np.ndarray:
    """Return a ``frames × 2`` float array of (valence, arousal), smooth in time and within [-1, 1]."""
    return np.clip(slow_curves(rng, frames, fps, offset=_OFFSET, swing=_SWING), -1.0, 1.0)


def slow_curves(
    rng: np.random.Generator,
    frames: int,
    fps: Fraction,
    *,
    offset: float,
    swing: tuple[float, float],
) -> np.ndarray:
    """``frames × 2``, unclipped: per column an offset in ±``offset`` plus three sinusoids (periods 2–17 s)
    whose amplitudes add up to a total drawn from ``swing``. Also draws the face's and voice's departures."""
    t = np.arange(frames) / float(fps)
    columns = []
    for _emotion in range(2):
        shift = rng.uniform(-offset, offset)
        total = rng.uniform(*swing)
        weights = rng.uniform(0.3, 1.0, _COMPONENTS)
        amplitudes = total * weights / weights.sum()
        freqs = np.exp(rng.uniform(np.log(_SLOWEST_HZ), np.log(_FASTEST_HZ), _COMPONENTS))
        phases = rng.uniform(0.0, 2.0 * np.pi, _COMPONENTS)
        waves = amplitudes[:, None] * np.sin(2.0 * np.pi * freqs[:, None] * t[None, :] + phases[:, None])
        columns.append(shift + waves.sum(axis=0))
    return np.stack(columns, axis=1)


def unannotated_mask(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Boolean mask of frames written as ``-5,-5``: a block at the start, one mid-trial, one at the end."""
    mask = np.zeros(frames, dtype=bool)
    start = max(1, round(frames * rng.uniform(0.02, 0.05)))
    end = max(1, round(frames * rng.uniform(0.01, 0.03)))
    middle_length = max(2, round(frames * rng.uniform(0.04, 0.08)))
    middle_start = round(frames * rng.uniform(0.35, 0.55))
    mask[:start] = True
    mask[middle_start : middle_start + middle_length] = True
    mask[frames - end :] = True
    return mask


def annotation_text(labels: np.ndarray, unannotated: np.ndarray) -> str:
    """The text of an annotation file: the header, then one ``v,a`` or ``-5,-5`` line per video frame."""
    lines = [ANNOTATION_HEADER]
    for (valence, arousal), missing in zip(labels, unannotated, strict=True):
        lines.append(UNANNOTATED_ROW if missing else f"{_number(valence)},{_number(arousal)}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    # Adding 0.0 turns a rounded -0.0 into 0.0, so no "-0.000" appears in the files.
    return f"{round(float(value), DECIMALS) + 0.0:.{DECIMALS}f}"
