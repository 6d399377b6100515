"""train → collect against a real MLflow tracking server on loopback, as on a team's shared server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagf_cli.app import app
from tagf_synth import SynthReport

runner = CliRunner()


@pytest.fixture(scope="module")
def workspace(processed_copy: Path, write_run_config: Callable[[Path, int], Path]) -> Path:
    """The module's folder: processed/ (the shared release), run.toml, and the runs and stores it makes."""
    write_run_config(
        processed_copy.parent, 2
    )  # its local artifact root (root/mlruns) must stay unused: a server decides
    return processed_copy.parent


def test_train_then_collect_log_everything_to_the_tracking_server(
    workspace: Path,
    mlflow_server: str,
    synth_release: SynthReport,
    monkeypatch: pytest.MonkeyPatch,
    invoke: Callable[..., str],
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.chdir(workspace)  # a stray local store (./mlflow.db, ./mlruns) would show up here
    outputs = workspace / "outputs"
    invoke("train", "--data", str(workspace / "processed"), "--fold", "0", "--emotion", "both", "--stamp", "remote",
            "--config", str(workspace / "run.toml"), "--output-root", str(outputs))  # fmt: skip
    sample = next(synth_release.out.glob("*test_set_sample*.txt"))
    out = invoke("collect", "--stamp", "remote", "--sample-file", str(sample), "--output-root", str(outputs))
    assert "mean ± std" in out

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("tagf")
    assert experiment is not None and experiment.artifact_location.startswith("mlflow-artifacts:")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.stamp = 'remote'")  # shared server
    (parent,) = [r for r in runs if r.data.tags.get("tagf.role") == "parent"]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == {"remote/fold0-valence", "remote/fold0-arousal"}
    for child in children.values():
        assert child.info.status == "FINISHED"
        assert sorted(m.step for m in client.get_metric_history(child.info.run_id, "val/ccc")) == [0, 1]
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"training_log.csv", "config.toml", "plots", "predictions"} <= artifacts
    collected = {a.path for a in client.list_artifacts(parent.info.run_id, "collect")}
    assert {"collect/summary.csv", "collect/summary.md", "collect/summary.json", "collect/submission.txt"} <= collected
    assert {"cv/ccc_valence_mean", "cv/ccc_arousal_std", "cv/P", "fold0/ccc_arousal"} <= set(
        client.get_run(parent.info.run_id).data.metrics
    )

    # the model went through the server's artifact proxy and comes back from it
    from tagf_core.tracking.mlflow_tracker import MlflowSession

    model = MlflowSession(mlflow_server, "tagf").load_model(
        f"runs:/{children['remote/fold0-valence'].info.run_id}/model"
    )
    assert sum(p.numel() for p in model.parameters()) > 0
    assert not (workspace / "mlflow.db").exists() and not (workspace / "mlruns").exists()


def test_collect_fails_fast_on_an_unreachable_server_and_writes_nothing(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp = workspace / "outputs-offline" / "offline" / "fold0-valence"
    stamp.mkdir(parents=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = runner.invoke(app, ["collect", "--stamp", "offline", "--output-root", str(workspace / "outputs-offline")])
    assert result.exit_code == 1
    assert "http://127.0.0.1:9" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (workspace / "outputs-offline" / "offline" / "summary.csv").exists()
