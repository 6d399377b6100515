"""Everything random about one synthetic person, i.e. one trial: labels, look, voice, and per-frame events.

Per-frame events make fusion worth it: while the face is hidden (a hand over it, or the head turned away)
there is no crop but the person keeps talking; during speech pauses the face stays visible. A few more
crops are missing at random (a face detector's misses), and the head drifts and jitters a little.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from tagf_synth.face import FaceIdentity, random_identity
from tagf_synth.labels import unannotated_mask, va_curves
from tagf_synth.voice import VoiceIdentity, random_voice

HAND_OVER_FACE = 0
HEAD_TURNED_AWAY = 1
NOT_HIDDEN = -1

_CROP_MISS_RATE = 0.015  # visible face but no crop, as when the detector misses a frame
_HIDDEN_SHARE = (0.05, 0.08)  # share of frames with the face hidden; keeps the cascade's hit rate near 0.9
_PAUSE_SECONDS = (0.3, 0.8)
_SECONDS_PER_PAUSE = 4.0
_SECONDS_PER_HIDDEN_BLOCK = 10.0


@dataclass(frozen=True)
class Person:
    labels: np.ndarray
    """frames × 2 (valence, arousal) in [-1, 1]: what the face and voice express, in every frame."""
    unannotated: np.ndarray
    """frames, bool: rows written as ``-5,-5``."""
    hidden: np.ndarray
    """frames, int: ``NOT_HIDDEN``, ``HAND_OVER_FACE`` or ``HEAD_TURNED_AWAY``; hidden frames have no crop."""
    crop_missed: np.ndarray
    """frames, bool: face visible in the video, but no crop (a detector miss)."""
    speaking: np.ndarray
    """frames, bool: False during pauses (only room noise)."""
    identity: FaceIdentity
    voice: VoiceIdentity
    head_motion: np.ndarray
    """frames × 2: face centre offset in the raw video, in face half-heights (slow drift plus jitter)."""
    crop_jitter: np.ndarray
    """frames × 2: face centre offset in the aligned crop, in face half-heights (alignment is not perfect)."""

    @property
    def has_crop(self) -> np.ndarray:
        return (self.hidden == NOT_HIDDEN) & ~self.crop_missed


def random_person(rng: np.random.Generator, frames: int, fps: Fraction) -> Person:
    labels = va_curves(rng, frames, fps)
    unannotated = unannotated_mask(rng, frames)
    hidden = _hidden_blocks(rng, frames, fps)
    crop_missed = (rng.random(frames) < _CROP_MISS_RATE) & (hidden == NOT_HIDDEN)
    speaking = _speech_with_pauses(rng, frames, fps, hidden != NOT_HIDDEN)
    identity = random_identity(rng)
    voice = random_voice(rng)
    t = np.arange(frames) / float(fps)
    drift = np.stack(
        [0.08 * np.sin(2.0 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0.0, 2.0 * np.pi)) for _axis in range(2)],
        axis=1,
    )
    head_motion = drift + rng.normal(0.0, 0.012, (frames, 2))
    crop_jitter = rng.normal(0.0, 0.015, (frames, 2))
    return Person(
        labels=labels,
        unannotated=unannotated,
        hidden=hidden,
        crop_missed=crop_missed,
        speaking=speaking,
        identity=identity,
        voice=voice,
        head_motion=head_motion,
        crop_jitter=crop_jitter,
    )


def _hidden_blocks(rng: np.random.Generator, frames: int, fps: Fraction) -> np.ndarray:
    """One hidden block per ``_SECONDS_PER_HIDDEN_BLOCK`` (at least one), away from the trial's ends."""
    hidden = np.full(frames, NOT_HIDDEN, dtype=np.int64)
    blocks = max(1, int(frames / float(fps) // _SECONDS_PER_HIDDEN_BLOCK))
    block_length = max(3, round(frames * rng.uniform(*_HIDDEN_SHARE) / blocks))
    # Each block gets its own stretch of the middle 80 % of the trial, so blocks never touch.
    region_start, region_end = round(0.1 * frames), round(0.9 * frames)
    edges = np.linspace(region_start, region_end, blocks + 1).round().astype(int)
    for first, last in zip(edges[:-1], edges[1:], strict=True):
        start = int(rng.integers(first, max(first + 1, last - block_length)))
        hidden[start : start + block_length] = rng.integers(HAND_OVER_FACE, HEAD_TURNED_AWAY + 1)
    return hidden


def _speech_with_pauses(rng: np.random.Generator, frames: int, fps: Fraction, face_hidden: np.ndarray) -> np.ndarray:
    """Speech everywhere except a few pauses, placed only where the face is visible."""
    speaking = np.ones(frames, dtype=bool)
    pauses = max(1, round(frames / float(fps) / _SECONDS_PER_PAUSE))
    for _pause in range(pauses):
        length = max(2, round(rng.uniform(*_PAUSE_SECONDS) * float(fps)))
        # A few tries to land on frames with a visible face; the draws are seeded, so this stays reproducible.
        for _attempt in range(20):
            start = int(rng.integers(0, max(1, frames - length)))
            if not face_hidden[start : start + length].any():
                speaking[start : start + length] = False
                break
    return speaking
