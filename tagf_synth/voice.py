"""A voice-like harmonic signal whose prosody follows arousal and whose timbre follows valence, plus room noise.

Per sample, the per-frame (valence, arousal) the voice expresses are interpolated and drive:

* pitch: ``base · 2^(0.45·arousal + 0.12·valence)`` octaves, with a slow intonation wobble;
* loudness: ×16 from arousal -1 to +1 (24 dB);
* syllable rate: 2.5 to 5 syllables per second with arousal;
* brightness (spectral tilt of the harmonics, ``h^-(1.3 - valence)``): dull for negative valence, bright for
  positive.

Syllables are raised-cosine bursts, each with its own vowel (two formant resonances scaled by the
speaker's vocal-tract factor). Frames where the person does not speak are silent apart from the room
noise, which every video has at its own level.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

SAMPLE_RATE = 16_000  # what VGGish-style audio features expect; keeps the files small

PITCH_OCTAVES_PER_AROUSAL = 0.45
PITCH_OCTAVES_PER_VALENCE = 0.12
LOUDNESS_OCTAVES_PER_AROUSAL = 2.0  # amplitude ×16 (24 dB) from arousal -1 to +1
TILT_PER_VALENCE = 1.0  # spectral tilt h^-(1.3 - this·valence): from 2.3 (dull) to 0.3 (bright)
_HARMONICS = 28
_HIGHEST_HARMONIC_HZ = 6_500.0  # stay clear of the 8 kHz Nyquist limit: no aliasing
_CONTROL_STEP = 40  # samples between updates of the harmonic weights (2.5 ms at 16 kHz)
_SYNTHESIS_BLOCK = 1 << 16  # samples synthesised at once (4 s at 16 kHz)
_EDGE_SECONDS = 0.02  # fade in/out of speech, so pauses start without clicks

# (F1, F2) in Hz of a few vowels (a, e, i, o, u): syllables pick one, so the spectrum moves like speech.
_VOWEL_FORMANTS = np.array([[750.0, 1200.0], [500.0, 1800.0], [300.0, 2300.0], [500.0, 900.0], [330.0, 850.0]])
_FORMANT_BANDWIDTH_HZ = np.array([110.0, 160.0])


@dataclass(frozen=True)
class VoiceIdentity:
    """What makes one synthetic speaker sound like themself."""

    base_pitch_hz: float
    vocal_tract: float
    """Scales the formant frequencies (shorter tract = higher formants)."""
    loudness: float


def random_voice(rng: np.random.Generator) -> VoiceIdentity:
    return VoiceIdentity(
        base_pitch_hz=float(np.exp(rng.uniform(np.log(95.0), np.log(220.0)))),
        vocal_tract=float(rng.uniform(0.9, 1.15)),
        loudness=float(rng.uniform(0.8, 1.2)),
    )


def samples_for_frames(frames: int, fps: Fraction, sample_rate: int = SAMPLE_RATE) -> int:
    """Audio samples that last exactly as long as ``frames`` video frames (rounded to a sample)."""
    return int(round(Fraction(frames) / fps * sample_rate))


def frame_of_sample(samples: int, fps: Fraction, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Index of the video frame each audio sample falls in."""
    return np.floor(np.arange(samples) * float(fps) / sample_rate).astype(np.int64)


def synthesize_voice(
    rng: np.random.Generator,
    labels: np.ndarray,
    speaking: np.ndarray,
    fps: Fraction,
    voice: VoiceIdentity,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """One speaker's voice, float32 within about [-0.8, 0.8], as long as the ``len(labels)`` video frames.

    ``labels`` is ``frames × 2``: the (valence, arousal) the voice expresses; ``speaking`` marks the frames with
    speech.
    """
    frames = len(labels)
    samples = samples_for_frames(frames, fps, sample_rate)
    frame_times = np.arange(frames) / float(fps)
    t = np.arange(samples) / sample_rate
    valence = np.interp(t, frame_times, labels[:, 0])
    arousal = np.interp(t, frame_times, labels[:, 1])

    intonation = 0.05 * np.sin(2.0 * np.pi * rng.uniform(0.4, 0.9) * t + rng.uniform(0.0, 2.0 * np.pi))
    octaves = PITCH_OCTAVES_PER_AROUSAL * arousal + PITCH_OCTAVES_PER_VALENCE * valence + intonation
    pitch = voice.base_pitch_hz * np.exp2(octaves)
    phase = 2.0 * np.pi * np.cumsum(pitch) / sample_rate

    syllable_rate = 3.75 + 1.25 * arousal
    syllable_position = np.cumsum(syllable_rate) / sample_rate + rng.uniform(0.0, 1.0)
    syllable_index = np.floor(syllable_position).astype(np.int64)
    # Raised-cosine burst per syllable, with a short gap between syllables as in real speech.
    within = syllable_position - syllable_index
    envelope = np.sin(np.pi * within) ** 1.5
    vowels = rng.integers(0, len(_VOWEL_FORMANTS), syllable_index.max() + 1)

    # Harmonic weights change slowly: compute them every _CONTROL_STEP samples and interpolate.
    control = np.arange(0, samples, _CONTROL_STEP)
    formants = _VOWEL_FORMANTS[vowels[syllable_index[control]]] * voice.vocal_tract  # controls × 2
    weights = _harmonic_weights(pitch[control], formants, 1.3 - TILT_PER_VALENCE * valence[control])
    voiced = _harmonics(phase, control, weights)
    breath = rng.normal(0.0, 0.04, samples)  # a little aspiration noise keeps it from sounding like an organ

    loudness = 0.16 * voice.loudness * np.exp2(LOUDNESS_OCTAVES_PER_AROUSAL * arousal)
    gate = _smooth_gate(speaking[frame_of_sample(samples, fps, sample_rate)], sample_rate)
    return ((voiced + breath) * envelope * loudness * gate).astype(np.float32)


def _harmonic_weights(pitch: np.ndarray, formants: np.ndarray, tilt: np.ndarray) -> np.ndarray:
    """harmonics × controls weights: harmonic h gets ``h^-tilt`` times the two formant resonances.

    Lower tilt = more energy in the high harmonics = brighter voice. Each column sums to 1, so the
    waveform's peak stays at most 1 whatever the pitch and vowel.
    """
    harmonic = np.arange(1, _HARMONICS + 1)[:, None]
    frequency = harmonic * pitch[None, :]
    resonance = 0.15 + sum(
        1.0 / (1.0 + ((frequency - formants[None, :, k]) / _FORMANT_BANDWIDTH_HZ[k]) ** 2) for k in range(2)
    )
    weights = harmonic ** (-tilt[None, :]) * resonance * (frequency < _HIGHEST_HARMONIC_HZ)
    return np.asarray(weights / weights.sum(axis=0, keepdims=True))


def _harmonics(phase: np.ndarray, control: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum over h of ``weight_h · sin(h · phase)``, the weights interpolated from the ``control`` samples.

    Done a block of samples at a time, so a long trial does not need a harmonics × samples array.
    """
    signal = np.zeros(len(phase))
    for start in range(0, len(phase), _SYNTHESIS_BLOCK):
        positions = np.arange(start, min(start + _SYNTHESIS_BLOCK, len(phase)))
        block_phase = phase[positions]
        for h in range(_HARMONICS):
            signal[positions] += np.interp(positions, control, weights[h]) * np.sin((h + 1) * block_phase)
    return signal


def room_noise(rng: np.random.Generator, samples: int, level: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Background noise of RMS ``level`` whose power falls off above 300 Hz, like a room's hum and hiss."""
    white = rng.normal(0.0, 1.0, samples)
    # Shape the spectrum directly (FFT) rather than with a per-sample recursive filter, which is slow in Python.
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(samples, d=1.0 / sample_rate)
    spectrum /= np.sqrt(1.0 + freqs / 300.0)
    pink_ish = np.fft.irfft(spectrum, n=samples)
    pink_ish *= level / max(float(np.std(pink_ish)), 1e-9)
    return pink_ish.astype(np.float32)


def _smooth_gate(speaking_per_sample: np.ndarray, sample_rate: int) -> np.ndarray:
    """0/1 speech mask with linear ramps, so speech fades in and out over ``_EDGE_SECONDS``."""
    width = max(1, int(_EDGE_SECONDS * sample_rate))
    kernel = np.ones(width) / width
    return np.convolve(speaking_per_sample.astype(float), kernel, mode="same")
