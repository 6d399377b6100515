"""Two `tagf train` of the same run launched at once: exactly one trains, the other is refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch


def test_the_same_run_launched_twice_at_once_is_trained_once(
    processed_copy: Path, write_run_config: Callable[[Path, int], Path], tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    config = write_run_config(tmp_path, 6)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(store).search_experiments()  # the store exists: only the run is contended here
    outputs = tmp_path / "outputs"
    command = [sys.executable, "-m", "tagf_cli", "train", "--data", str(processed_copy), "--config", str(config),
               "--output-root", str(outputs), "--stamp", "twice", "--fold", "0", "--emotion", "valence"]  # fmt: skip
    environment = {**os.environ, "MLFLOW_TRACKING_URI": store}
    launches = [
        subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(launch.wait(timeout=600), *launch.communicate()) for launch in launches]

    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    refused = next(stderr for code, _, stderr in results if code == 1)
    errors = [line for line in refused.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in refused, refused
    assert "this run is being trained by" in errors[0] or "a run with this stamp, fold and emotion exists" in errors[0]

    folder = outputs / "twice" / "fold0-valence"  # one run's files, not two runs' mixed
    run_id = json.loads((folder / "run.json").read_text())["run_id"]
    assert json.loads((folder / "summary.json").read_text())["run_id"] == run_id
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["state"]["run_id"] == run_id
    experiment = MlflowClient(store).get_experiment_by_name("tagf")
    assert experiment is not None
    children = MlflowClient(store).search_runs([experiment.experiment_id], "tags.`tagf.role` = 'child'")
    assert [run.info.run_id for run in children] == [run_id]
