"""Two stamps compared through the MLflow API, as the UI shows them: distinct child names, each parent run holding
its cross-validation (the numbers `tagf collect` prints) and the stamp's params, each child its own learning rate;
and `tagf collect --stamp a --stamp b` comparing them without the UI."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagf_cli.app import app

LEARNING_RATES = {"a": "0.001", "b": "0.003"}


@pytest.fixture(scope="module")
def workspace(processed_copy: Path, write_run_config: Callable[[Path, int], Path]) -> Path:
    """processed/ and one config per stamp: the tiny run, differing only in the learning rate."""
    base = write_run_config(processed_copy.parent, 1).read_text()
    for stamp, rate in LEARNING_RATES.items():
        assert "learning_rate = 0.001" in base
        (processed_copy.parent / f"{stamp}.toml").write_text(base.replace("0.001", rate))
    return processed_copy.parent


def test_two_stamps_compare_in_mlflow_and_in_collect(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, invoke: Callable[..., str]
) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    outputs = workspace / "outputs"
    for stamp in LEARNING_RATES:
        invoke("train", "--data", workspace / "processed", "--fold", "0", "--emotion", "both", "--stamp", stamp,
               "--config", workspace / f"{stamp}.toml", "--output-root", outputs)  # fmt: skip

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tagf")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = {r.data.tags["tagf.stamp"]: r for r in runs if r.data.tags.get("tagf.role") == "parent"}
    assert set(parents) == {"a", "b"}
    children = {r.info.run_name: r for r in runs if r.data.tags.get("tagf.role") == "child"}
    assert set(children) == {f"{s}/fold0-{e}" for s in ("a", "b") for e in ("valence", "arousal")}

    for stamp, rate in LEARNING_RATES.items():
        # the launch logged the cross-validation on the parent already; collect logs the same numbers again
        logged_by_launch = client.get_run(parents[stamp].info.run_id).data.metrics
        out = invoke("collect", "--stamp", stamp, "--output-root", outputs)
        parent = client.get_run(parents[stamp].info.run_id)
        metrics = parent.data.metrics
        assert {key: metrics[key] for key in logged_by_launch} == logged_by_launch
        with (outputs / stamp / "summary.csv").open() as f:
            rows = {row["fold"]: row for row in csv.DictReader(f)}  # the cells collect prints
        for emotion in ("valence", "arousal"):
            assert f"{metrics[f'cv/ccc_{emotion}_mean']:.4f}" == rows["mean"][f"{emotion}_ccc"]
            assert f"{metrics[f'cv/ccc_{emotion}_std']:.4f}" == rows["std"][f"{emotion}_ccc"]
            assert f"{metrics[f'fold0/ccc_{emotion}']:.4f}" == rows["0"][f"{emotion}_ccc"]
            assert f"{metrics[f'cv/ccc_{emotion}_mean']:.4f} ± {metrics[f'cv/ccc_{emotion}_std']:.4f}" in out
        assert f"{metrics['cv/P']:.4f}" == rows["mean"]["p"] and rows["mean"]["p"] in out
        assert metrics["cv/ccc_valence_std"] == 0.0  # one fold: population std

        # the stamp's tags and shared params on the parent; each child has its own learning rate
        tags = parent.data.tags
        assert (tags["stamp"], tags["backbone"], tags["models"], tags["folds"], tags["emotions"]) == (
            stamp, "frozen", "tagf", "0", "valence,arousal"
        )  # fmt: skip
        assert parent.data.params["train.learning_rate"] == rate
        assert "data.fold" not in parent.data.params and "data.emotion" not in parent.data.params
        mine = [run for name, run in children.items() if name.startswith(f"{stamp}/")]
        assert {run.data.params["train.learning_rate"] for run in mine} == {rate}

        # it spans its children, and ended with them
        assert parent.info.status == "FINISHED"
        assert parent.info.start_time <= min(run.info.start_time for run in mine)
        assert parent.info.end_time == max(run.info.end_time for run in mine)

        # the summary as an MLflow table, replaced (not appended to) by collect: one row per fold, mean, std
        table = client.download_artifacts(parent.info.run_id, "collect/summary.json", str(workspace / stamp))
        loaded = json.loads(Path(table).read_text())
        assert [row[0] for row in loaded["data"]] == ["0", "mean", "std"]
        assert {"path": "collect/summary.json", "type": "table"} in json.loads(tags["mlflow.loggedArtifacts"])

    out = invoke("collect", "--stamp", "a", "--stamp", "b", "--output-root", outputs)
    with (outputs / "comparison.csv").open() as f:
        compared = {row["stamp"]: row for row in csv.DictReader(f)}
    assert set(compared) == {"a", "b"} and (outputs / "comparison.md").is_file()
    for stamp in LEARNING_RATES:
        metrics = client.get_run(parents[stamp].info.run_id).data.metrics
        assert compared[stamp]["p"] == f"{metrics['cv/P']:.4f}"
        assert compared[stamp]["arousal_ccc"] == f"{metrics['cv/ccc_arousal_mean']:.4f}"
        assert compared[stamp]["p"] in out
    assert "comparison.md" in out.replace("\n", "")
    refused = CliRunner().invoke(app, ["collect", "--stamp", "a", "--stamp", "b", "--out", str(workspace / "x.txt")])
    assert refused.exit_code == 1 and "give a single --stamp" in refused.output
