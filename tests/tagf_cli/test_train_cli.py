"""train → MLflow contents → resume → predict → collect → submission, through the CLI, on a sqlite store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tagf_cli.app import app
from tagf_synth import SynthReport

runner = CliRunner()


@pytest.fixture(scope="module")
def workspace(processed_copy: Path, write_run_config: Callable[[Path, int], Path]) -> Path:
    """The module's folder: processed/ (the shared release), run.toml, and the runs and stores it makes."""
    write_run_config(processed_copy.parent, 2)
    return processed_copy.parent


@pytest.fixture()
def mlflow_store(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_train_both_emotions_then_resume_predict_and_collect(
    workspace: Path, mlflow_store: str, synth_release: SynthReport, invoke: Callable[..., str]
) -> None:
    from mlflow.tracking import MlflowClient

    outputs = workspace / "outputs"
    common = ["--output-root", str(outputs)]
    invoke("train", "--data", str(workspace / "processed"), "--fold", "0", "--emotion", "both", "--stamp", "cli",
            "--config", str(workspace / "run.toml"), *common)  # fmt: skip
    for emotion in ("valence", "arousal"):
        folder = outputs / "cli" / f"fold0-{emotion}"
        assert {"checkpoint.pt", "best.pt", "training_log.csv", "summary.json", "config.toml"} <= {
            p.name for p in folder.iterdir()
        }

    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("tagf")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("tagf.role") == "parent"]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert len(parents) == 1 and set(children) == {"cli/fold0-valence", "cli/fold0-arousal"}
    valence = children["cli/fold0-valence"]
    assert valence.info.status == "FINISHED"
    assert {valence.data.tags[k] for k in ("stamp", "fold", "emotion", "backbone")} == {"cli", "0", "valence", "frozen"}
    assert valence.data.params["train.batch_size"] == "4"
    history = client.get_metric_history(valence.info.run_id, "val/ccc")
    assert sorted(m.step for m in history) == [0, 1]
    assert "best/val_ccc" in valence.data.metrics
    artifacts = {a.path for a in client.list_artifacts(valence.info.run_id)}
    assert {"training_log.csv", "config.toml", "plots", "predictions"} <= artifacts

    invoke("resume", "--stamp", "cli", "--fold", "0", "--emotion", "valence", "--max-epochs", "3", *common)
    resumed = client.get_run(valence.info.run_id)
    assert resumed.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(valence.info.run_id, "val/ccc")) == [0, 1, 2]
    assert len(client.search_runs([experiment.experiment_id])) == len(runs)  # the same run, not a new one

    out = invoke("predict", "--stamp", "cli", "--fold", "0", "--emotion", "arousal", "--partition", "validate", *common)
    assert "predictions for the validate partition" in out

    sample = next(synth_release.out.glob("*test_set_sample*.txt"))
    submission = workspace / "submission.txt"
    out = invoke("collect", "--stamp", "cli", "--sample-file", str(sample), "--out", str(submission), *common)
    assert "fold0" in out.replace("fold 0", "fold0") or "0" in out
    lines = submission.read_text().splitlines()
    assert lines[0] == "image_location,valence,arousal"
    assert [line.split(",")[0] for line in lines[1:]] == [
        line.split(",")[0] for line in sample.read_text().splitlines()[1:]
    ]
    assert (outputs / "cli" / "summary.csv").exists() and (outputs / "cli" / "summary.md").exists()

    video = next((synth_release.out / "videos").glob("*.mp4"))
    out = invoke("predict", "--video", str(video), "--stamp", "cli", "--fold", "0", "--out", str(workspace), *common)
    table = (workspace / f"{video.stem}_valence_arousal.csv").read_text().splitlines()
    assert table[0] == "frame,time_s,valence,arousal" and len(table) > 30


def test_baselines_are_child_runs_beside_tagf_and_collect_compares_them(
    workspace: Path, mlflow_store: str, invoke: Callable[..., str]
) -> None:
    from mlflow.tracking import MlflowClient

    outputs = workspace / "outputs"
    out = invoke("train", "--data", str(workspace / "processed"), "--emotion", "both", "--stamp", "models",
                  "--model", "tagf", "--model", "ridge", "--model", "ridge-audio", "--max-epochs", "1",
                  "--config", str(workspace / "run.toml"), "--output-root", str(outputs))  # fmt: skip
    assert "TAGF and baselines" in out
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("tagf")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.stamp = 'models'")
    parent = client.search_runs([experiment.experiment_id], "tags.`tagf.role` = 'parent'")
    parent_id = next(r.info.run_id for r in parent if r.info.run_name == "models")
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id}
    assert set(children) == {
        f"models/fold0-{e}{m}" for e in ("valence", "arousal") for m in ("", "-ridge", "-ridge-audio")
    }
    ridge = children["models/fold0-arousal-ridge"]
    assert ridge.data.tags["model"] == "ridge" and ridge.data.tags["backbone"] == "frozen"
    assert {"val/ccc", "val/rmse", "val/pcc", "train/ccc", "best/val_ccc", "probe/alpha"} <= set(ridge.data.metrics)
    assert len(client.get_metric_history(ridge.info.run_id, "val/ccc")) == 8

    out = invoke("collect", "--stamp", "models", "--output-root", str(outputs))
    assert "TAGF and baselines" in out
    table = (outputs / "models" / "models.md").read_text()
    assert "| tagf |" in table and "| ridge |" in table and "| ridge-audio |" in table
    out = invoke("collect", "--stamp", "models", "--model", "ridge", "--output-root", str(outputs))
    assert "models (ridge): best validation CCC" in out
    out = invoke("predict", "--stamp", "models", "--emotion", "arousal", "--model", "ridge-audio",
                  "--partition", "validate", "--output-root", str(outputs))  # fmt: skip
    assert "fold0-arousal-ridge-audio" in out.replace("\n", "")
    refused = runner.invoke(app, ["train", "--data", str(workspace / "processed"), "--model", "lstm"])
    assert refused.exit_code == 1 and "--model 'lstm' is not one of tagf, concat" in refused.output


def test_a_second_train_with_the_same_name_is_refused(
    workspace: Path, mlflow_store: str, invoke: Callable[..., str]
) -> None:
    args = ["train", "--data", str(workspace / "processed"), "--stamp", "twice", "--max-epochs", "1",
            "--config", str(workspace / "run.toml"), "--output-root", str(workspace / "outputs")]  # fmt: skip
    invoke(*args)
    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert "tagf resume" in again.output and "--overwrite" in again.output
    summary = json.loads((workspace / "outputs" / "twice" / "fold0-valence" / "summary.json").read_text())
    assert summary["epochs"] == 1  # the first run is untouched


def test_an_unreachable_tracking_server_fails_before_training(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(workspace / "processed"),
            "--stamp",
            "offline",
            "--config",
            str(workspace / "run.toml"),
            "--output-root",
            str(workspace / "outputs"),
        ],  # fmt: skip
    )
    assert result.exit_code == 1 and "127.0.0.1:9" in result.output
    assert not (workspace / "outputs" / "offline").exists()


def _final_state(outputs: Path, stamp: str) -> tuple[dict[str, Any], list[list[str]]]:
    import torch

    folder = outputs / stamp / "fold0-valence"
    checkpoint = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
    rows = [line.split(",") for line in (folder / "training_log.csv").read_text().splitlines()]
    return checkpoint["model"], [row[:-1] for row in rows]  # all columns but epoch_seconds


def test_train_killed_with_sigkill_then_resumed_equals_an_uninterrupted_run(
    workspace: Path, mlflow_store: str, invoke: Callable[..., str]
) -> None:
    import torch

    outputs = workspace / "outputs"
    common = ["--data", str(workspace / "processed"), "--config", str(workspace / "run.toml"),
              "--output-root", str(outputs), "--max-epochs", "6"]  # fmt: skip
    invoke("train", "--stamp", "straight", *common)

    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    process = subprocess.Popen(
        [sys.executable, "-m", "tagf_cli", "train", "--stamp", "killed", *common],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    checkpoint = outputs / "killed" / "fold0-valence" / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and not checkpoint.exists():
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # right after epoch 0's checkpoint: in the middle of epoch 1
    assert process.wait() == -signal.SIGKILL
    killed_at = torch.load(checkpoint, map_location="cpu", weights_only=True)["state"]["next_epoch"]
    assert killed_at < 6

    invoke("resume", "--stamp", "killed", "--fold", "0", "--emotion", "valence", "--output-root", str(outputs))
    straight_weights, straight_log = _final_state(outputs, "straight")
    resumed_weights, resumed_log = _final_state(outputs, "killed")
    assert resumed_log == straight_log and len(resumed_log) == 7  # header + 6 epochs, same metrics
    for key, value in straight_weights.items():
        assert torch.equal(resumed_weights[key], value), key


def test_train_resume_starts_the_runs_that_never_started(
    workspace: Path, mlflow_store: str, invoke: Callable[..., str]
) -> None:
    outputs = workspace / "outputs"
    common = ["--data", str(workspace / "processed"), "--config", str(workspace / "run.toml"),
              "--output-root", str(outputs), "--max-epochs", "1", "--stamp", "partial"]  # fmt: skip
    invoke("train", "--emotion", "valence", *common)
    out = invoke("train", "--emotion", "both", "--resume", *common)
    assert "fold0-valence" in out and "fold0-arousal" in out and "mean ± std" in out
    for emotion in ("valence", "arousal"):
        assert json.loads((outputs / "partial" / f"fold0-{emotion}" / "summary.json").read_text())["epochs"] == 1


def test_one_train_command_parses_the_manifest_once(
    workspace: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch, invoke: Callable[..., str]
) -> None:
    """Two emotions × (TAGF and a probe), frozen: four runs, one embedding cache, one reading of manifest.json,
    one computation of the fold's split."""
    from tagf_core.data import layout
    from tagf_core.training import setup

    split_fold, splits = setup.split_fold, []

    def counted_split(*args: Any, **kwargs: Any) -> Any:
        splits.append(args[1])
        return split_fold(*args, **kwargs)

    monkeypatch.setattr(setup, "split_fold", counted_split)
    read_manifest, readings = layout.read_manifest, []

    def counted(root: Path) -> list[layout.TrialRecord]:
        readings.append(root)
        return read_manifest(root)

    parsed = []
    read_text = Path.read_text

    def counted_text(path: Path, *args: Any, **kwargs: Any) -> str:
        if path.name == layout.MANIFEST_NAME:
            parsed.append(path)
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(layout, "read_manifest", counted)
    monkeypatch.setattr(Path, "read_text", counted_text)
    for module in ("tagf_core.training.setup",):  # modules that imported the function itself
        monkeypatch.setattr(f"{module}.read_manifest", counted)
    invoke("train", "--data", str(workspace / "processed"), "--emotion", "both", "--stamp", "once",
            "--model", "tagf", "--model", "ridge", "--max-epochs", "1", "--config", str(workspace / "run.toml"),
            "--output-root", str(workspace / "outputs"))  # fmt: skip
    assert len({p.name for p in (workspace / "outputs" / "once").iterdir() if p.is_dir()}) == 4
    assert len(readings) == 1 and len(parsed) == 1 and splits == [0]
