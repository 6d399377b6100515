"""Everything random about one synthetic person, i.e. one trial: labels, look, voice, and per-frame events.

What makes fusion worth it:

* Face and voice each show the felt emotion with their own slow departures from it, in opposite directions
  (a smile over a flat voice, a calm face over an agitated voice), and the annotation is the impression
  both give together: their mean. Either modality alone gets only part of the label.
* The face is hidden (a hand over it, or the head turned away: no crop) in 10–15 % of the frames, in
  stretches of 1–3 s, while the person keeps talking; speech pauses fall only where the face is visible.

A few more crops are missing at random (a face detector's misses), and the head drifts and jitters a little.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from tagf_synth.face import FaceIdentity, random_identity
from tagf_synth.labels import slow_curves, unannotated_mask, va_curves
from tagf_synth.voice import VoiceIdentity, random_voice

HAND_OVER_FACE = 0
HEAD_TURNED_AWAY = 1
NOT_HIDDEN = -1

_CROP_MISS_RATE = 0.015  # visible face but no crop, as when the detector misses a frame
# Face and voice depart from the felt emotion by ± sinusoids of this total amplitude (same periods as the labels).
_DEPARTURE_SWING = (0.3, 0.45)
# Share of frames with the face hidden, in blocks of a few seconds. At most 15 %: with the detector's misses
# the Haar cascade still finds the face in over 80 % of the raw frames.
_HIDDEN_SHARE = (0.10, 0.15)
_HIDDEN_BLOCK_SECONDS = 2.25  # typical block length: sets how many blocks share the hidden frames
_PAUSE_SHARE = (0.05, 0.08)
_PAUSE_SECONDS = (0.3, 0.6)


@dataclass(frozen=True)
class Person:
    labels: np.ndarray
    """frames × 2 (valence, arousal) in [-1, 1]: the annotation, the mean of what face and voice express."""
    face_expression: np.ndarray
    """frames × 2 in [-1, 1]: the (valence, arousal) the face shows: the felt emotion plus a departure."""
    voice_expression: np.ndarray
    """frames × 2 in [-1, 1]: the (valence, arousal) the voice carries: the felt emotion minus that departure."""
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
    felt = va_curves(rng, frames, fps)
    departure = slow_curves(rng, frames, fps, offset=0.0, swing=_DEPARTURE_SWING)
    face_expression = np.clip(felt + departure, -1.0, 1.0)
    voice_expression = np.clip(felt - departure, -1.0, 1.0)
    labels = (face_expression + voice_expression) / 2.0
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
        face_expression=face_expression,
        voice_expression=voice_expression,
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
    """Blocks with the face hidden, ``_HIDDEN_SHARE`` of the frames in all, away from the trial's ends.

    One block per ``_HIDDEN_BLOCK_SECONDS`` worth of hidden frames (at least one): a 12 s trial gets one block
    of 1.2–1.8 s, a minute-long one three or four of 1–4 s.
    """
    hidden = np.full(frames, NOT_HIDDEN, dtype=np.int64)
    share_frames = frames * rng.uniform(*_HIDDEN_SHARE)
    typical_block = _HIDDEN_BLOCK_SECONDS * float(fps)
    blocks = max(1, round(share_frames / typical_block))
    weights = rng.uniform(0.6, 1.4, blocks)
    lengths = np.maximum(3, np.round(share_frames * weights / weights.sum())).astype(int)
    # Each block gets its own stretch of the middle 80 % of the trial, so blocks never touch.
    region_start, region_end = round(0.1 * frames), round(0.9 * frames)
    edges = np.linspace(region_start, region_end, blocks + 1).round().astype(int)
    for first, last, length in zip(edges[:-1], edges[1:], lengths, strict=True):
        length = int(min(length, max(1, last - first - 1)))
        start = int(rng.integers(first, max(first + 1, last - length)))
        hidden[start : start + length] = rng.integers(HAND_OVER_FACE, HEAD_TURNED_AWAY + 1)
    return hidden


def _speech_with_pauses(rng: np.random.Generator, frames: int, fps: Fraction, face_hidden: np.ndarray) -> np.ndarray:
    """Speech everywhere except pauses (``_PAUSE_SHARE`` of the frames), placed only where the face is visible."""
    speaking = np.ones(frames, dtype=bool)
    target = frames * rng.uniform(*_PAUSE_SHARE)
    typical_pause = float(np.mean(_PAUSE_SECONDS)) * float(fps)
    pauses = max(1, round(target / typical_pause))
    for _pause in range(pauses):
        length = max(2, round(rng.uniform(*_PAUSE_SECONDS) * float(fps)))
        length = min(length, max(2, frames // 4))
        # A few tries to land on frames with a visible face; the draws are seeded, so this stays reproducible.
        for _attempt in range(20):
            start = int(rng.integers(0, max(1, frames - length)))
            if not face_hidden[start : start + length].any():
                speaking[start : start + length] = False
                break
    return speaking
