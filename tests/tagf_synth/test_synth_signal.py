"""The synthetic data carries a learnable signal: faces and voices follow the labels.

Each test measures a simple, label-free statistic on the written files (crops, decoded audio, decoded raw
video) and checks it against the annotation.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from tagf_synth import SynthReport

logger = logging.getLogger(__name__)

ANNOTATIONS = Path("Annotations") / "VA_Estimation_Challenge"
UNANNOTATED = -5.0


def labels_of(root: Path, trial: str) -> np.ndarray:
    """frames × 2 (valence, arousal), -5 where unannotated."""
    path = next((root / ANNOTATIONS).rglob(f"{trial}.txt"))
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    return np.array([[float(v) for v in row.split(",")] for row in rows])


def video_of(root: Path, trial: str) -> Path:
    stem = re.sub(r"_(left|right)$", "", trial)
    return next((root / "videos").glob(f"{stem}.*"))


def decoded_audio(video: Path) -> tuple[np.ndarray, int, Fraction]:
    """Mono samples as floats in [-1, 1], the sample rate and the video frame rate."""
    with av.open(str(video)) as container:
        rate = container.streams.audio[0].rate
        average_rate = container.streams.video[0].average_rate
        assert average_rate is not None
        fps = Fraction(average_rate)
        chunks = []
        for frame in container.decode(audio=0):
            samples = frame.to_ndarray().reshape(-1).astype(np.float64)
            chunks.append(samples / 32768.0 if frame.format.name.startswith("s16") else samples)
    return np.concatenate(chunks), rate, fps


def mouth_measures(crop_bgr: np.ndarray) -> tuple[float, float]:
    """(corner lift, dark inner-mouth area) of a 112×112 crop, in pixels.

    Corner lift: per column of the mouth region, the darkness-weighted mean row (the lips' midline);
    the midline row at the mouth's centre minus that at its corners. A smile lifts the corners.
    """
    grey = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY).astype(float)
    skin = float(np.median(np.r_[grey[60:70, 26:36].ravel(), grey[60:70, 76:86].ravel()]))
    region = grey[70:95, 34:78]
    darkness = np.clip(0.85 * skin - region, 0.0, None)
    mass = darkness.sum(axis=0)
    columns = np.nonzero(mass > 0.3 * mass.max())[0]
    columns = np.arange(columns.min(), columns.max() + 1)
    midline = (darkness * np.arange(region.shape[0])[:, None]).sum(axis=0) / np.maximum(mass, 1e-9)
    k = max(2, len(columns) // 5)
    centre = midline[columns[len(columns) // 2 - k // 2 :][:k]].mean()
    corners = np.r_[midline[columns[:k]], midline[columns[-k:]]].mean()
    open_area = float((region < 0.4 * skin).sum())
    return float(centre - corners), open_area


def crop_trials(report: SynthReport) -> list[str]:
    return sorted(p.name for p in (report.out / "cropped_aligned").iterdir())


def test_mouth_curvature_follows_valence_and_mouth_opening_follows_arousal(signal_dataset: SynthReport) -> None:
    lifts, openings, valence, arousal = [], [], [], []
    for trial in crop_trials(signal_dataset):
        labels = labels_of(signal_dataset.out, trial)
        folder = signal_dataset.out / "cropped_aligned" / trial
        for crop in sorted(folder.iterdir()):
            row = labels[int(crop.stem) - 1]
            if row[0] == UNANNOTATED:
                continue
            image = cv2.imread(str(crop))
            assert image is not None
            lift, opening = mouth_measures(image)
            lifts.append(lift)
            openings.append(opening)
            valence.append(row[0])
            arousal.append(row[1])
    assert len(lifts) > 500
    lift_r = np.corrcoef(lifts, valence)[0, 1]
    opening_r = np.corrcoef(openings, arousal)[0, 1]
    logger.info("corner lift ~ valence r=%.3f, mouth opening ~ arousal r=%.3f", lift_r, opening_r)
    assert lift_r > 0.7
    assert opening_r > 0.7
    # The curvature carries valence, not arousal: fitted on both, arousal's weight is small.
    design = np.column_stack([np.ones(len(lifts)), valence, arousal])
    _, valence_weight, arousal_weight = np.linalg.lstsq(design, np.array(lifts), rcond=None)[0]
    assert abs(arousal_weight) < 0.25 * abs(valence_weight)


def per_frame_voice(samples: np.ndarray, rate: int, fps: Fraction, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per video frame: RMS over the frame, and pitch (Hz, NaN where unvoiced) by autocorrelation over 40 ms."""
    rms = np.zeros(frames)
    pitch = np.full(frames, np.nan)
    half_window = int(0.02 * rate)
    shortest_lag, longest_lag = int(rate / 400), int(rate / 60)
    for frame in range(frames):
        start, end = int(frame * rate / fps), int((frame + 1) * rate / fps)
        rms[frame] = np.sqrt(np.mean(samples[start:end] ** 2))
        middle = (start + end) // 2
        window = samples[max(0, middle - half_window) : middle + half_window]
        if len(window) < 2 * half_window:
            continue
        window = window - window.mean()
        correlation = np.correlate(window, window, "full")[len(window) - 1 :]
        lag = shortest_lag + int(np.argmax(correlation[shortest_lag:longest_lag]))
        if correlation[lag] > 0.3 * correlation[0]:
            pitch[frame] = rate / lag
    return rms, pitch


def windowed_speech_loudness(rms: np.ndarray, reach: int) -> np.ndarray:
    """RMS over the frames within ±``reach`` that are clearly above the noise floor (NaN if none).

    Per-frame RMS mostly follows the syllables; over a few hundred milliseconds it follows the loudness.
    """
    loud = rms > 4 * np.percentile(rms, 5)
    result = np.full(len(rms), np.nan)
    for frame in range(len(rms)):
        window = slice(max(0, frame - reach), frame + reach + 1)
        if loud[window].any():
            result[frame] = np.sqrt(np.mean(rms[window][loud[window]] ** 2))
    return result


def single_speaker_audio_trials(report: SynthReport) -> list[str]:
    trials = []
    for trial in report.train + report.validate:
        if trial.endswith(("_left", "_right")):
            continue
        with av.open(str(video_of(report.out, trial))) as container:
            if container.streams.audio:
                trials.append(trial)
    return trials


def test_voice_pitch_and_loudness_follow_arousal(signal_dataset: SynthReport) -> None:
    trials = single_speaker_audio_trials(signal_dataset)
    assert len(trials) >= 2
    pitch_pairs: list[tuple[float, float]] = []
    loudness_pairs: list[tuple[float, float]] = []
    for trial in trials:
        labels = labels_of(signal_dataset.out, trial)
        samples, rate, fps = decoded_audio(video_of(signal_dataset.out, trial))
        rms, pitch = per_frame_voice(samples, rate, fps, len(labels))
        annotated = labels[:, 1] != UNANNOTATED
        loudness = windowed_speech_loudness(rms, round(0.3 * float(fps)))
        speaking = annotated & ~np.isnan(loudness)
        voiced = annotated & ~np.isnan(pitch)
        # Centre per trial: each speaker has their own base pitch and loudness.
        log_pitch = np.log2(pitch[voiced])
        pitch_pairs += zip(log_pitch - log_pitch.mean(), labels[voiced, 1] - labels[voiced, 1].mean(), strict=True)
        log_loudness = np.log2(loudness[speaking])
        arousal = labels[speaking, 1]
        loudness_pairs += zip(log_loudness - log_loudness.mean(), arousal - arousal.mean(), strict=True)
    pitch_r = np.corrcoef(np.array(pitch_pairs).T)[0, 1]
    loudness_r = np.corrcoef(np.array(loudness_pairs).T)[0, 1]
    logger.info("pitch ~ arousal r=%.3f, loudness ~ arousal r=%.3f", pitch_r, loudness_r)
    assert len(pitch_pairs) > 200
    assert pitch_r > 0.6
    assert loudness_r > 0.5


def test_speech_goes_on_while_the_face_is_hidden_and_pauses_while_it_is_visible(
    signal_dataset: SynthReport,
) -> None:
    """What makes fusion pay: audio covers frames without a face crop, the face covers speech pauses."""
    trials = [t for t in single_speaker_audio_trials(signal_dataset) if t in crop_trials(signal_dataset)]
    assert trials
    for trial in trials:
        labels = labels_of(signal_dataset.out, trial)
        samples, rate, fps = decoded_audio(video_of(signal_dataset.out, trial))
        rms, _pitch = per_frame_voice(samples, rate, fps, len(labels))
        folder = signal_dataset.out / "cropped_aligned" / trial
        has_crop = np.zeros(len(labels), dtype=bool)
        has_crop[[int(p.stem) - 1 for p in folder.iterdir()]] = True
        noise_floor = np.percentile(rms, 5)
        loud = rms > 4 * noise_floor
        # Runs of at least 3 frames, so single missed crops or syllable gaps do not count.
        assert _longest_run(~has_crop & loud) >= 3, f"{trial}: no speech while the face is hidden"
        assert _longest_run(has_crop & (rms < 2 * noise_floor)) >= 3, f"{trial}: no pause while the face is visible"


def _longest_run(mask: np.ndarray) -> int:
    longest = current = 0
    for value in mask:
        current = current + 1 if value else 0
        longest = max(longest, current)
    return longest


def test_haar_cascade_finds_the_face_in_the_raw_video_of_the_trial_without_crops(
    signal_dataset: SynthReport,
) -> None:
    cropped = set(crop_trials(signal_dataset))
    (trial,) = [t for t in signal_dataset.train + signal_dataset.validate if t not in cropped]
    cascades = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]  # missing from OpenCV's type stubs
    cascade = cv2.CascadeClassifier(str(cascades / "haarcascade_frontalface_default.xml"))
    hits = frames = 0
    with av.open(str(video_of(signal_dataset.out, trial))) as container:
        for frame in container.decode(video=0):
            grey = frame.to_ndarray(format="gray")
            faces = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
            frames += 1
            if len(faces):
                # The face sits near the middle of the picture; a hit elsewhere would be a false alarm.
                x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
                centre_x, centre_y = x + w / 2, y + h / 2
                assert abs(centre_x - grey.shape[1] / 2) < 25 and abs(centre_y - grey.shape[0] / 2) < 30
                hits += 1
    rate = hits / frames
    logger.warning("Haar cascade detection rate on %s: %.3f over %d frames", trial, rate, frames)
    assert rate > 0.8
    assert rate < 1.0, "the face should be hidden in some frames"
