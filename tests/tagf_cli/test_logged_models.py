"""A frozen run's logged model: only what was trained, linked to the best epoch, with the run's params; and the
registry's champion per emotion, loadable by alias."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch


def test_a_frozen_run_logs_a_lean_model_at_its_best_epoch_and_registers_the_champion(
    processed_copy: Path,
    write_run_config: Callable[[Path, int], Path],
    invoke: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow.pytorch
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("TAGF_TRACKING__REGISTER_AS", "va")
    config = write_run_config(tmp_path, 3)
    outputs = tmp_path / "outputs"
    for stamp, epochs in (("first", "3"), ("second", "1")):
        invoke("train", "--data", processed_copy, "--config", config, "--output-root", outputs, "--stamp", stamp,
               "--fold", "0", "--emotion", "valence", "--max-epochs", epochs)  # fmt: skip

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("tagf")
    assert experiment is not None
    summaries = {
        s: json.loads((outputs / s / "fold0-valence" / "summary.json").read_text()) for s in ("first", "second")
    }
    models = {m.source_run_id: m for m in client.search_logged_models([experiment.experiment_id])}
    for summary in summaries.values():
        logged = models[summary["run_id"]]
        run = client.get_run(summary["run_id"])
        assert logged.params == run.data.params  # the run's params travel with the model
        assert len(logged.tags["tagf.backbone_digest"]) == 64
        steps = {metric.step for metric in logged.metrics or [] if metric.key == "val/ccc"}
        assert steps == {summary["best_epoch"]}  # its page shows the epoch it holds
        files = [Path(p) for p in (tmp_path / "mlruns").rglob("*") if p.is_file() and logged.model_id in str(p)]
        assert sum(p.stat().st_size for p in files) < 60e6  # the backbones (≈ 440 MB) are not in it

    champion = client.get_model_version_by_alias("va-valence", "champion")
    best = max(summaries.values(), key=lambda s: s["best_val_ccc"])
    assert champion.run_id == best["run_id"] and len(client.search_model_versions("name='va-valence'")) == 2
    model = mlflow.pytorch.load_model("models:/va-valence@champion")
    assert not [name for name, _ in model.named_parameters() if "backbone" in name]
    video, audio = torch.randn(2, 16, 512), torch.randn(2, 16, 128)
    with torch.no_grad():
        prediction = model(video_embeddings=video, audio_embeddings=audio)
    assert prediction.shape == (2, 16, 1) and torch.isfinite(prediction).all()


def test_registering_does_not_depend_on_mlflows_global_tracking_uri(
    processed_copy: Path,
    write_run_config: Callable[[Path, int], Path],
    invoke: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another store set process-wide (a notebook's, an earlier command's) must not take the registration."""
    import mlflow
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("TAGF_TRACKING__REGISTER_AS", "va")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")  # MLflow's global: another store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # tagf's store
    try:
        config = write_run_config(tmp_path, 1)
        invoke("train", "--data", processed_copy, "--config", config, "--output-root", tmp_path / "outputs",
               "--stamp", "g", "--fold", "0", "--emotion", "arousal")  # fmt: skip
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    assert int(MlflowClient(store).get_model_version_by_alias("va-arousal", "champion").version) == 1
