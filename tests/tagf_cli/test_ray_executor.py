"""`tagf train --executor ray` on a local Ray instance: two folds as two tasks, one of them killed and retried."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray  # the optional extra tagf[ray]; `make setup` installs it, so this fails loudly rather than skips
from typer.testing import CliRunner

from preprocessing import preprocess_release
from tagf_cli.app import app
from tagf_synth import generate_dataset

runner = CliRunner()

MAX_EPOCHS = 6


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, write_run_config: Callable[[Path, int], Path]) -> Path:
    """Twelve short trials: enough for folds 0 and 1 to have training and validation trials."""
    root = tmp_path_factory.mktemp("ray")
    release = generate_dataset(root / "raw", trials=12, seconds=2.0, seed=3)
    report = preprocess_release(release.out, root / "processed", workers=2)
    assert not report.failed
    write_run_config(root, MAX_EPOCHS)
    return root


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()


def _kill_worker_after_first_epoch(run_folder: Path, killed: dict[str, Any], stop: threading.Event) -> None:
    """SIGKILL the Ray worker holding ``run_folder`` once its first checkpoint is on disk: mid-run."""
    checkpoint, record = run_folder / "checkpoint.pt", run_folder / "run.json"
    while not stop.is_set():
        if checkpoint.exists() and record.exists():
            pid = json.loads(record.read_text())["pid"]
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            assert "ray::" in cmdline, cmdline  # a Ray worker, not this test process
            os.kill(pid, signal.SIGKILL)
            killed["pid"] = pid
            return
        time.sleep(0.01)


def _weights_and_log(folder: Path) -> tuple[dict[str, Any], list[list[str]]]:
    import torch

    checkpoint = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
    rows = [line.split(",") for line in (folder / "training_log.csv").read_text().splitlines()]
    return checkpoint["model"], [row[:-1] for row in rows]  # all columns but epoch_seconds


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the Ray worker through /proc")
def test_two_folds_as_ray_tasks_one_killed_mid_run_is_retried_and_resumes(
    workspace: Path, mlflow_server: str, local_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    outputs = workspace / "outputs"
    common = ["--data", str(workspace / "processed"), "--config", str(workspace / "run.toml"),
              "--output-root", str(outputs), "--emotion", "valence"]  # fmt: skip
    killed: dict[str, Any] = {}
    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_worker_after_first_epoch, args=(outputs / "raycv" / "fold0-valence", killed, stop), daemon=True
    )
    killer.start()
    try:
        result = runner.invoke(app, ["train", "--stamp", "raycv", "--fold", "0", "--fold", "1", "--executor", "ray",
                                     "--max-retries", "2", *common])  # fmt: skip
    finally:
        stop.set()
        killer.join(timeout=10)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "pid" in killed, "the run finished before its worker could be killed"

    # the retried task told the driver it resumed, on another worker, from a checkpoint after epoch 0
    starts = [line for line in result.output.splitlines() if line.startswith("fold0-valence started:")]
    assert len(starts) == 2, result.output
    assert "from epoch 0" in starts[0] and "resuming at epoch" in starts[1]
    assert int(starts[1].split("resuming at epoch ")[1].split("/")[0]) >= 1
    assert f":{killed['pid']}," not in starts[1]
    assert "fold1-valence finished" in result.output and "mean ± std" in result.output

    # one embedding cache, built once before the runs and read by both
    assert len(list((workspace / "processed" / "embeddings").iterdir())) == 1

    # one parent, one child per run: the retry continued the same MLflow run, logging no epoch twice
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("tagf")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.stamp = 'raycv'")
    parents = [r for r in runs if r.data.tags.get("tagf.role") == "parent"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.info.run_name for r in children) == ["raycv/fold0-valence", "raycv/fold1-valence"]
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["executor"] == "ray"
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val/ccc")]
        assert sorted(steps) == list(range(MAX_EPOCHS)), child.info.run_name

    # and it ends where an uninterrupted Ray run of the same fold ends (same threads per task), bit for bit
    result = runner.invoke(app, ["train", "--stamp", "straight", "--fold", "0", "--executor", "ray", *common])
    assert result.exit_code == 0, result.output
    straight_weights, straight_log = _weights_and_log(outputs / "straight" / "fold0-valence")
    resumed_weights, resumed_log = _weights_and_log(outputs / "raycv" / "fold0-valence")
    assert resumed_log == straight_log and len(resumed_log) == MAX_EPOCHS + 1
    for key, value in straight_weights.items():
        assert torch.equal(resumed_weights[key], value), key
