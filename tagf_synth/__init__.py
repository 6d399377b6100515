"""Synthetic Aff-Wild2: a stand-in for the licensed dataset, in the exact layout of its valence–arousal release.

``generate_dataset(out, trials=8, seconds=12.0, seed=0)`` writes annotations, 112×112 ``cropped_aligned``
faces, raw videos (H.264/AAC ``.mp4``, one MPEG-4/PCM ``.avi``), the test-set list and the organisers'
sample submission; see ``tagf_synth.layout`` for the tree and ``tagf_synth.plan`` for which trials and
videos a given N yields. Same arguments give byte-identical files.

Generative model (the ground truth a model can learn):

* Labels: per trial, the felt valence and arousal are each an offset plus three sinusoids with periods of
  2–17 s, clipped to [-1, 1]. Face and voice each depart from them, in opposite directions, by three more
  sinusoids (total amplitude 0.3–0.45: a smile over a flat voice, a calm face over an agitated voice), and
  the annotation is the mean of what the two show. ``-5,-5`` rows cover a block at the start, one mid-trial
  and one at the end.
* Face: a drawn frontal face with per-trial identity (skin tone, hair, face width, eye spacing, mouth
  width). Valence sets the mouth curvature (smile ↔ frown; inner brows drop when negative); arousal sets
  eye openness, eyebrow height and mouth opening. Per video: room, lighting (gain, colour cast, gradient,
  flicker) and camera noise; per frame: head drift and jitter. The face is hidden (hand over it or head
  turned away, so no crop) in 10–15 % of the frames, in stretches of 1–3 s (one per 20 s or so: about 1 s
  in an 8 s trial, 1.5 s in a 12 s one), and about 1.5 % of other crops are missing at random.
* Voice: a harmonic "voice" with vowel formants and syllable bursts. Arousal raises pitch (0.45 octave
  per unit), loudness (×16 over the range) and syllable rate (2.5–5 /s); valence raises pitch slightly
  (0.12 octave) and brightens the spectrum (harmonic tilt h^-2.3 … h^-0.3). Per speaker: base pitch, vocal
  tract, loudness; per video: room noise. Speech pauses (0.3–0.6 s, 5–8 % of the frames) fall only where
  the face is visible, and speech goes on while the face is hidden.

Each modality alone thus carries only part of each label, and misses part of the time: fusing both beats
either alone (measured with a linear probe in ``tests/tagf_synth/test_synth_fusion_probe.py``).
"""

from tagf_synth.generate import SynthReport, generate_dataset

__all__ = ["SynthReport", "generate_dataset"]
