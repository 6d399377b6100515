"""Does frozen-mode `tagf train` learn what the data holds? Checked on data `tagf synth` did not write.

The release comes from ``independent_release.py`` (its own faces, voices, frame rates and containers; the face
carries valence, the voice arousal). Everything runs through the `tagf` command as a user would run it:
preprocess, then fold 0 with TAGF and the ridge probe on the same cached embeddings. The probe shows the signal
is there; TAGF must get at least 0.9× the probe's validation CCC for each emotion, and must fit validation
trials that are copies of training trials. With the reference's BatchNorm statistics
(``train.batchnorm_statistics = "running"``) these fail: the eval-mode model predicts a near-flat line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tagf_cli.app import app

EMOTIONS = ("valence", "arousal")
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "learning.toml"
"""Windows of 100 frames every 20, so 250-frame trials give 9 windows each: 16 batches per epoch, still the few
of a small dataset, where the reference's statistics fail."""

runner = CliRunner()


def _tagf(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _best(outputs: Path, stamp: str, emotion: str, model: str = "tagf") -> float:
    name = f"fold0-{emotion}" + ("" if model == "tagf" else f"-{model}")
    return float(json.loads((outputs / stamp / name / "summary.json").read_text())["best_val_ccc"])


def _train(root: Path, raw: Path, stamp: str, models: tuple[str, ...]) -> Path:
    processed, outputs = root / f"processed-{stamp}", root / "outputs"
    _tagf("preprocess", "--data-root", str(raw), "--out", str(processed), "--workers", "2")
    model_flags = [flag for model in models for flag in ("--model", model)]
    _tagf("train", "--data", str(processed), "--fold", "0", "--emotion", "both", "--stamp", stamp, *model_flags,
          "--config", str(CONFIG), "--output-root", str(outputs))  # fmt: skip
    return outputs


@pytest.fixture(scope="module", autouse=True)
def _local_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every run of this module logs to its own sqlite store, never to the working directory's."""
    store = tmp_path_factory.mktemp("learning-mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAGF_TRACKING__TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
        patch.setenv("TAGF_TRACKING__ARTIFACT_ROOT", str(store / "mlruns"))
        yield


@pytest.fixture(scope="module")
def learned(independent_release: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TAGF and the ridge probe trained on fold 0 of the independent release; returns the output root."""
    root = tmp_path_factory.mktemp("learning")
    return _train(root, independent_release.out, "independent", ("tagf", "ridge"))


def test_the_probe_finds_the_signal_in_the_embeddings(learned: Path) -> None:
    for emotion in EMOTIONS:
        assert _best(learned, "independent", emotion, "ridge") > 0.85, emotion


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_frozen_tagf_reaches_nine_tenths_of_the_probe(learned: Path, emotion: str) -> None:
    probe, tagf = _best(learned, "independent", emotion, "ridge"), _best(learned, "independent", emotion)
    assert tagf >= 0.9 * probe, f"{emotion}: TAGF {tagf:.3f} vs probe {probe:.3f}"


def test_eval_mode_tracks_the_labels_as_well_as_train_mode_on_a_training_trial(
    learned: Path, independent_release: Any
) -> None:
    """The eval-mode model (what validation and prediction use) is the model that trained: on a training trial
    its predictions follow the labels about as well as the train-mode forward's (batch statistics, dropout)."""
    from tagf_core.config import TagfConfig
    from tagf_core.data.dataset import EmbeddingWindowDataset
    from tagf_core.training.checkpoint import load_torch
    from tagf_core.training.loss import concordance
    from tagf_core.training.setup import RunData, build_model

    folder = learned / "independent" / "fold0-valence"
    best = load_torch(folder / "best.pt", "best")
    cfg = TagfConfig.model_validate(best["config"])  # best.pt describes the model it holds
    model = build_model(cfg)
    model.load_state_dict(best["model"], strict=False)
    (cache,) = (cfg.data.processed_root / "embeddings").iterdir()
    trial = independent_release.train[0]
    windows = EmbeddingWindowDataset(
        cache, cfg.data.processed_root, RunData.read(cfg.data.processed_root).records_of([trial]), emotion="valence",
        window_len=cfg.data.window_len, hop_len=cfg.data.hop_len, crop_size=cfg.data.crop_size,
    )  # fmt: skip
    batch = [windows[i] for i in range(len(windows))]
    video = torch.stack([w["video_embeddings"] for w in batch])
    audio = torch.stack([w["audio_embeddings"] for w in batch])
    labels = torch.stack([w["label"] for w in batch])[..., 0][torch.stack([w["mask"] for w in batch])].numpy()

    def ccc(train_mode: bool) -> tuple[float, float]:
        torch.manual_seed(0)
        model.train(train_mode)
        with torch.no_grad():
            prediction = model.forward_from_embeddings(video, audio)[..., 0]
        real = prediction[torch.stack([w["mask"] for w in batch])].numpy()
        return concordance(real, labels), float(np.std(real))

    (eval_ccc, eval_std), (train_ccc, train_std) = ccc(False), ccc(True)
    assert eval_ccc >= train_ccc - 0.1, f"eval CCC {eval_ccc:.3f} vs train-mode {train_ccc:.3f}"
    assert eval_std >= 0.5 * train_std, f"eval predictions std {eval_std:.3f} vs train-mode {train_std:.3f}"


def test_frozen_tagf_fits_validation_trials_that_are_copies_of_training_trials(
    independent_release: Any, release_generator: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("copies")
    raw = release_generator.copy_training_trials_as_validation(independent_release, root / "raw")
    outputs = _train(root, raw, "copies", ("tagf",))
    for emotion in EMOTIONS:
        assert _best(outputs, "copies", emotion) >= 0.9, emotion
