"""The independent generator itself: official layout, determinism, `tagf preprocess` accepts it, each emotion
lives in its own modality, and a tiny linear probe on the preprocessed arrays finds the signal."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from preprocessing.runner import PreprocessReport
from tagf_core.data.layout import read_manifest

FloatArray = npt.NDArray[np.float64]
ANNOTATIONS = Path("Annotations") / "VA_Estimation_Challenge"
SMALL = {"train_trials": 2, "validate_trials": 1, "frames": 30}


def _file_digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _packets(video: Path, kind: str) -> list[bytes]:
    """The payloads of the non-empty packets of the first ``kind`` ("video"/"audio") stream, in file order."""
    with av.open(str(video)) as container:
        stream = getattr(container.streams, kind)[0]
        return [bytes(packet) for packet in container.demux(stream) if packet.size > 0]


def _video_of(out: Path, trial: str) -> Path:
    (video,) = (out / "videos").glob(f"{trial}.*")
    return video


# ---------------------------------------------------------------------------------------------------------
# layout


def test_official_layout(independent_release: Any) -> None:
    release = independent_release
    out: Path = release.out
    assert release.train == tuple(f"ind_{i:03d}" for i in range(7))
    assert release.validate == ("ind_007", "ind_008")
    assert set(release.fps.values()) == {24.0, 20.0}
    for partition, trials in (("Train_Set", release.train), ("Validation_Set", release.validate)):
        assert sorted(p.stem for p in (out / ANNOTATIONS / partition).iterdir()) == list(trials)
    suffixes = []
    for trial in release.trials:
        labels = release.labels[trial]
        assert labels.shape == (250, 2)
        folder = "Train_Set" if trial in release.train else "Validation_Set"
        lines = (out / ANNOTATIONS / folder / f"{trial}.txt").read_text().splitlines()
        assert lines[0] == "valence,arousal"
        assert lines[1:] == [f"{v:.3f},{a:.3f}" for v, a in labels]
        assert np.abs(labels).max() <= 0.9
        assert (labels.max(axis=0) - labels.min(axis=0) >= 0.99).all(), "each curve spans at least 1.0"

        crops = sorted((out / "cropped_aligned" / trial).iterdir())
        assert [c.name for c in crops] == [f"{i:05d}.jpg" for i in range(1, 251)]
        first = cv2.imread(str(crops[0]))
        assert first is not None and first.shape == (112, 112, 3)

        video = _video_of(out, trial)
        suffixes.append(video.suffix)
        with av.open(str(video)) as container:
            (stream,) = container.streams.video
            (sound,) = container.streams.audio
            assert stream.guessed_rate is not None and float(stream.guessed_rate) == release.fps[trial]
            assert (stream.codec_context.width, stream.codec_context.height) == (160, 120)
            assert sound.codec_context.name in {"flac", "pcm_s16le"}
            assert sound.codec_context.sample_rate in {22_050, 44_100}
            samples = sum(frame.samples for frame in container.decode(sound))
        assert len(_packets(video, "video")) == 250
        assert samples / sound.codec_context.sample_rate >= 250 / release.fps[trial]
    assert suffixes == [".mkv", ".mov"] * 4 + [".mkv"]


# ---------------------------------------------------------------------------------------------------------
# determinism and independence of the modalities


def test_same_arguments_write_the_same_bytes(release_generator: ModuleType, tmp_path: Path) -> None:
    first = release_generator.write_release(tmp_path / "a", seed=11, **SMALL)
    second = release_generator.write_release(tmp_path / "b", seed=11, **SMALL)
    digests = _file_digests(first.out)
    assert len(digests) == 3 + 3 * 30 + 3
    assert digests == _file_digests(second.out)
    other = release_generator.write_release(tmp_path / "c", seed=12, **SMALL)
    assert not np.array_equal(first.labels["ind_000"], other.labels["ind_000"])


@pytest.mark.parametrize(("changed", "carrier", "untouched"), [(1, "audio", "video"), (0, "video", "audio")])
def test_each_label_moves_only_its_own_modality(
    release_generator: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changed: int, carrier: str,
    untouched: str,
) -> None:  # fmt: skip
    """Flipping arousal (valence) leaves every face crop and video packet (every audio packet) byte-identical."""
    original = release_generator.write_release(tmp_path / "original", seed=3, **SMALL)
    trial_labels = release_generator.trial_labels

    def flipped(seed: int, index: int, frames: int, fps: float) -> FloatArray:
        labels = trial_labels(seed, index, frames, fps).copy()
        labels[:, changed] *= -1.0
        return labels

    monkeypatch.setattr(release_generator, "trial_labels", flipped)
    changed_release = release_generator.write_release(tmp_path / "changed", seed=3, **SMALL)
    for trial in original.trials:
        assert np.array_equal(changed_release.labels[trial][:, changed], -original.labels[trial][:, changed])
        before, after = _video_of(original.out, trial), _video_of(changed_release.out, trial)
        assert _packets(before, untouched) == _packets(after, untouched)
        assert _packets(before, carrier) != _packets(after, carrier)
        crops_before = _file_digests(original.out / "cropped_aligned" / trial)
        crops_after = _file_digests(changed_release.out / "cropped_aligned" / trial)
        assert (crops_before == crops_after) == (carrier == "audio")


# ---------------------------------------------------------------------------------------------------------
# preprocessing


def test_preprocess_accepts_every_trial(independent_release: Any, independent_processed: PreprocessReport) -> None:
    release, report = independent_release, independent_processed
    assert not report.failed, [o.message for o in report.failed]
    assert sorted(o.trial for o in report.done) == sorted(release.trials)
    assert not [o for o in report.done if o.warnings], [(o.trial, o.warnings) for o in report.done]
    records = {record.trial: record for record in read_manifest(report.out)}
    assert sorted(records) == sorted(release.trials)
    for trial in release.trials:
        record = records[trial]
        assert record.partition == ("train" if trial in release.train else "validate")
        assert record.length == len(release.labels[trial]) == 250
        assert record.fps == release.fps[trial]
        assert record.has_audio
        assert record.face_source == "cropped_aligned"
        assert record.frames_without_face == 0
        folder = report.out / trial
        labels = np.load(folder / "VA_continuous_label.npy")
        np.testing.assert_array_equal(labels, release.labels[trial].astype(np.float32))
        assert np.load(folder / "video.npy", mmap_mode="r").shape == (250, 48, 48, 3)
        logmel = np.load(folder / "logmel.npy")
        assert logmel.shape == (250, 96, 64)
        assert logmel.astype(np.float32).mean() > -3.0, "audio present, not the silence floor (−4.6)"


# ---------------------------------------------------------------------------------------------------------
# the signal: a tiny ridge probe on trivial features of the preprocessed arrays


def _video_features(video: npt.NDArray[np.uint8]) -> FloatArray:
    """T×48×48×3 → T×9: mean RGB of the crop, and of the upper and lower halves of the mouth region."""
    pixels = video.astype(np.float64)
    mouth = pixels[:, 28:40, 14:34]
    return np.concatenate(
        [pixels.mean(axis=(1, 2)), mouth[:, :6].mean(axis=(1, 2)), mouth[:, 6:].mean(axis=(1, 2))], axis=1
    )


def _audio_features(logmel: npt.NDArray[np.float16]) -> FloatArray:
    """T×96×64 → T×64: band means over the first 48 rows (0.48 s) of each frame's patch.

    The patch of frame i starts at the frame and looks 0.96 s ahead, while the labels move on a ~1 s scale;
    its first half is the part that describes the frame (the whole patch's mean lags the label by ~0.5 s).
    """
    return logmel[:, :48].astype(np.float64).mean(axis=1)


def _ccc(prediction: FloatArray, target: FloatArray) -> float:
    covariance = np.mean((prediction - prediction.mean()) * (target - target.mean()))
    return float(2 * covariance / (prediction.var() + target.var() + (prediction.mean() - target.mean()) ** 2))


def _ridge_probe_ccc(
    features: dict[str, FloatArray], targets: dict[str, FloatArray], train: tuple[str, ...], validate: tuple[str, ...]
) -> float:
    """Fit ridge regression (standardised features, intercept, penalty 0.01 per sample) on the train trials;
    return the CCC of its predictions over all validation frames."""
    x = np.concatenate([features[t] for t in train])
    y = np.concatenate([targets[t] for t in train])
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / scale
    weights = np.linalg.solve(z.T @ z + 0.01 * len(z) * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    prediction = np.concatenate([((features[t] - mean) / scale) @ weights + y.mean() for t in validate])
    return _ccc(prediction, np.concatenate([targets[t] for t in validate]))


@pytest.mark.parametrize(("emotion", "column", "array", "featurize"), [
    ("valence", 0, "video.npy", _video_features),
    ("arousal", 1, "logmel.npy", _audio_features),
])  # fmt: skip
def test_linear_probe_finds_the_emotion_in_its_modality(
    independent_release: Any, independent_processed: PreprocessReport, emotion: str, column: int, array: str,
    featurize: Any,
) -> None:  # fmt: skip
    release, root = independent_release, independent_processed.out
    features = {t: featurize(np.load(root / t / array)) for t in release.trials}
    targets = {t: np.load(root / t / "VA_continuous_label.npy")[:, column].astype(np.float64) for t in release.trials}
    ccc = _ridge_probe_ccc(features, targets, release.train, release.validate)
    print(f"{emotion} from {array}: validation CCC {ccc:.3f}")
    assert ccc > 0.8, f"{emotion} probe on {array}: validation CCC {ccc:.3f}"
