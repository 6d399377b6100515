"""MLflow statuses after failures and kills, through the CLI: the parent follows its children, `tagf resume` and
`tagf collect` mark a SIGKILLed run KILLED, and collect advises `tagf resume` for a run that started."""

from __future__ import annotations

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

runner = CliRunner()


@pytest.fixture(scope="module")
def workspace(processed_copy: Path, write_run_config: Callable[[Path, int], Path]) -> Path:
    write_run_config(processed_copy.parent, 2)
    return processed_copy.parent


@pytest.fixture()
def store(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _runs(uri: str, stamp: str) -> tuple[Any, dict[str, Any]]:
    """The stamp's parent run and its children by run folder name, as MLflow holds them now."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tagf")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`tagf.role` = 'parent'")
    parent = next(run for run in runs if run.data.tags.get("tagf.stamp") == stamp)
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert all(run.info.run_name.startswith(f"{stamp}/") for run in children)
    return parent, {run.info.run_name.removeprefix(f"{stamp}/"): run for run in children}


def test_a_run_failing_before_training_fails_its_parent_until_it_trains(
    workspace: Path, store: str, invoke: Callable[..., str]
) -> None:
    common = ["train", "--data", workspace / "processed", "--stamp", "early", "--max-epochs", "1",
              "--config", workspace / "run.toml", "--output-root", workspace / "outputs"]  # fmt: skip
    result = runner.invoke(app, [str(a) for a in [*common, "--weights-dir", workspace / "no-weights"]])
    assert result.exit_code == 1 and "weights folder not found" in result.output
    parent, children = _runs(store, "early")
    assert children == {} and parent.info.status == "FAILED"

    invoke(*common)
    parent, children = _runs(store, "early")
    assert children["fold0-valence"].info.status == "FINISHED" and parent.info.status == "FINISHED"


def test_a_sigkilled_run_is_marked_killed_by_resume_and_collect_advises_resuming_it(
    workspace: Path, store: str, invoke: Callable[..., str]
) -> None:
    outputs = workspace / "outputs"
    common = ["--output-root", str(outputs)]
    process = subprocess.Popen(
        [sys.executable, "-m", "tagf_cli", "train", "--data", str(workspace / "processed"), "--emotion", "both",
         "--stamp", "killed", "--max-epochs", "8", "--config", str(workspace / "run.toml"), *common],
        env={**os.environ, "MLFLOW_TRACKING_URI": store}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    checkpoint = outputs / "killed" / "fold0-arousal" / "checkpoint.pt"  # valence first, then arousal
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and not checkpoint.exists():
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # in the middle of arousal's training
    assert process.wait() == -signal.SIGKILL
    assert not (outputs / "killed" / "fold0-arousal" / "summary.json").exists()
    parent, children = _runs(store, "killed")
    assert children["fold0-valence"].info.status == "FINISHED"
    assert children["fold0-arousal"].info.status == "RUNNING" and parent.info.status == "RUNNING"  # as left

    # another run of the stamp resumed: the dead one is found and marked on the way
    invoke("resume", "--stamp", "killed", "--fold", "0", "--emotion", "valence", "--max-epochs", "9", *common)
    parent, children = _runs(store, "killed")
    assert children["fold0-valence"].info.status == "FINISHED"
    assert children["fold0-arousal"].info.status == "KILLED" and parent.info.status == "KILLED"

    refused = runner.invoke(app, ["collect", "--stamp", "killed", *common])
    assert refused.exit_code == 1
    assert refused.output.strip().endswith("run `tagf resume --stamp killed --fold 0 --emotion arousal`")

    invoke("resume", "--stamp", "killed", "--fold", "0", "--emotion", "arousal", *common)
    parent, children = _runs(store, "killed")
    assert {run.info.status for run in children.values()} == {"FINISHED"} and parent.info.status == "FINISHED"
    invoke("collect", "--stamp", "killed", *common)


def test_collect_marks_a_sigkilled_run_killed_even_when_none_finished(
    workspace: Path, store: str, invoke: Callable[..., str]
) -> None:
    outputs = workspace / "outputs"
    process = subprocess.Popen(
        [sys.executable, "-m", "tagf_cli", "train", "--data", str(workspace / "processed"), "--stamp", "lone",
         "--max-epochs", "8", "--config", str(workspace / "run.toml"), "--output-root", str(outputs)],
        env={**os.environ, "MLFLOW_TRACKING_URI": store}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    record = outputs / "lone" / "fold0-valence" / "run.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and not record.exists():
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL

    result = runner.invoke(app, ["collect", "--stamp", "lone", "--output-root", str(outputs)])
    assert result.exit_code == 1
    assert "fold0-valence: `tagf resume --stamp lone --fold 0 --emotion valence`" in result.output
    parent, children = _runs(store, "lone")
    assert children["fold0-valence"].info.status == "KILLED" and parent.info.status == "KILLED"
