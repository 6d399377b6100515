"""MlflowSession and MlflowTracker against a real sqlite store in a temporary folder (never the default store)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import torch

from tagf_core.errors import TagfError
from tagf_core.tracking.mlflow_tracker import (
    MlflowSession,
    MlflowTracker,
    child_run_name,
    resolve_tracking_uri,
    run_folder_name,
)
from tagf_core.tracking.tracker import tracked

EXPERIMENT = "tagf-test"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def session(store: Path) -> MlflowSession:
    """One store for the module: opening a fresh sqlite store runs MLflow's migrations (seconds)."""
    return MlflowSession(f"sqlite:///{store}/mlflow.db", EXPERIMENT, store / "mlruns")


@pytest.fixture()
def child(session: MlflowSession, request: pytest.FixtureRequest) -> Iterator[MlflowTracker]:
    """A fresh child run per test, named after the test, under the stamp ``tests``."""
    tracker = session.child(session.parent_run("tests"), request.node.name, {"fold": "0", "emotion": "valence"})
    yield tracker
    tracker.close("FINISHED")


def _run(session: MlflowSession, run_id: str) -> Any:
    return session.client.get_run(run_id)


def _artifacts(session: MlflowSession, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of a run, recursively, as MLflow lists them."""
    files = set()
    for info in session.client.list_artifacts(run_id, path):
        files |= _artifacts(session, run_id, info.path) if info.is_dir else {info.path}
    return files


def test_resolve_tracking_uri_prefers_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri("sqlite:///mlflow.db") == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert resolve_tracking_uri("sqlite:///mlflow.db") == "http://tracking.example:5000"


def test_the_experiment_keeps_its_artifacts_under_the_artifact_root(session: MlflowSession, store: Path) -> None:
    experiment = session.client.get_experiment(session.experiment_id)
    assert experiment.name == EXPERIMENT
    assert experiment.artifact_location == (store / "mlruns").resolve().as_uri()
    # a second session on the same store finds the same experiment
    again = MlflowSession(session.tracking_uri, EXPERIMENT, store / "elsewhere")
    assert again.experiment_id == session.experiment_id


def test_the_parent_run_of_a_stamp_is_found_again_not_duplicated(session: MlflowSession) -> None:
    first = session.parent_run("stamp-a")
    assert session.parent_run("stamp-a") == first
    other = session.parent_run("stamp-b")
    assert other != first
    run = _run(session, first)
    assert run.info.run_name == "stamp-a"
    assert run.info.status == "FINISHED"
    assert run.data.tags["tagf.role"] == "parent" and run.data.tags["tagf.stamp"] == "stamp-a"
    parents = session.client.search_runs([session.experiment_id], "tags.`tagf.stamp` = 'stamp-a'")
    assert [r.info.run_id for r in parents] == [first]


def test_a_child_run_lies_under_its_parent_with_its_tags(session: MlflowSession) -> None:
    parent = session.parent_run("stamp-child")
    tracker = session.child(parent, "fold0-valence", {"stamp": "stamp-child", "fold": "0", "emotion": "valence"})
    run = _run(session, tracker.run_id)
    assert run.info.run_name == "fold0-valence"
    assert run.info.status == "RUNNING"
    assert run.info.experiment_id == session.experiment_id
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert {k: run.data.tags[k] for k in ("stamp", "fold", "emotion")} == {
        "stamp": "stamp-child",
        "fold": "0",
        "emotion": "valence",
    }
    tracker.close()
    assert _run(session, tracker.run_id).info.status == "FINISHED"


def test_metrics_keep_their_steps_and_logged_steps_reads_them_back(
    session: MlflowSession, child: MlflowTracker
) -> None:
    for epoch in range(3):
        child.log_metrics({"val/ccc": 0.1 * epoch, "train/loss": 1.0 - 0.1 * epoch}, step=epoch)
    history = session.client.get_metric_history(child.run_id, "val/ccc")
    assert sorted((m.step, round(m.value, 6)) for m in history) == [(0, 0.0), (1, 0.1), (2, 0.2)]
    assert child.logged_steps("val/ccc") == {0, 1, 2}
    assert child.logged_steps("lr") == set()


def test_params_are_idempotent_for_equal_values_and_refuse_a_conflict(
    session: MlflowSession, child: MlflowTracker
) -> None:
    child.log_params({"train.batch_size": 12, "train.learning_rate": 0.0001, "data.root": Path("/data")})
    child.log_params({"train.batch_size": 12, "train.learning_rate": 0.0001, "model.heads": 2})  # resume
    params = _run(session, child.run_id).data.params
    assert params == {
        "train.batch_size": "12",
        "train.learning_rate": "0.0001",
        "data.root": "/data",
        "model.heads": "2",
    }
    with pytest.raises(TagfError) as error:
        child.log_params({"train.batch_size": 24})
    message = str(error.value)
    assert "train.batch_size" in message and "'12'" in message and "'24'" in message and "\n" not in message
    assert _run(session, child.run_id).data.params["train.batch_size"] == "12"


def test_many_params_are_logged_in_batches(session: MlflowSession, child: MlflowTracker) -> None:
    child.log_params({f"p.{i:03d}": i for i in range(250)})  # MLflow takes at most 100 params per batch
    assert len(_run(session, child.run_id).data.params) == 250


def test_files_and_folders_become_artifacts(session: MlflowSession, child: MlflowTracker, tmp_path: Path) -> None:
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "curves.png").write_bytes(b"\x89PNG")
    (tmp_path / "predictions" / "extra").mkdir(parents=True)
    (tmp_path / "predictions" / "extra" / "t1.txt").write_text("valence\n0.5\n")
    (tmp_path / "config.toml").write_text("[train]\n")
    (tmp_path / "best.pt").write_bytes(b"weights")

    child.log_artifact(tmp_path / "config.toml")
    child.log_artifact(tmp_path / "plots", "plots")
    child.log_artifact(tmp_path / "predictions")
    child.log_artifact(tmp_path / "best.pt", "weights")

    assert _artifacts(session, child.run_id) == {
        "config.toml",
        "plots/curves.png",
        "predictions/extra/t1.txt",
        "weights/best.pt",
    }
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        child.log_artifact(tmp_path / "nothing.csv")


class _TwoStreams(torch.nn.Module):
    """A stand-in with the model's calling convention: keyword tensors B×L×D in, B×L×1 out."""

    def __init__(self) -> None:
        super().__init__()
        self.video = torch.nn.Linear(6, 4)
        self.audio = torch.nn.Linear(3, 4)
        self.head = torch.nn.Linear(4, 1)

    def forward(self, video_embeddings: torch.Tensor, audio_embeddings: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.video(video_embeddings) + self.audio(audio_embeddings)))


def test_the_logged_model_loads_and_predicts_the_same(
    session: MlflowSession, child: MlflowTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    torch.manual_seed(0)
    model = _TwoStreams()
    example = {"video_embeddings": torch.randn(2, 8, 6), "audio_embeddings": torch.randn(2, 8, 3)}
    with torch.no_grad():
        expected = model(**example)

    child.log_model(model, example, "model")

    assert "MLFLOW_TRACKING_URI" not in os.environ  # MLflow's global tracking URI was only borrowed
    loaded = session.load_model(f"runs:/{child.run_id}/model")
    with torch.no_grad():
        assert torch.equal(loaded(**example), expected)
        # pickled, not exported: another batch size and length work too
        longer = {"video_embeddings": torch.randn(1, 13, 6), "audio_embeddings": torch.randn(1, 13, 3)}
        assert torch.equal(loaded(**longer), model(**longer))

    from mlflow.models import get_model_info

    with session.global_tracking_uri():
        info = get_model_info(f"runs:/{child.run_id}/model")
    inputs = {spec.name: spec.shape for spec in info.signature.inputs.inputs}
    length = example["video_embeddings"].shape[1]  # fixed: a TAGF model only takes its own window length
    assert inputs == {"video_embeddings": (-1, length, 6), "audio_embeddings": (-1, length, 3)}
    assert info.signature.outputs.inputs[0].shape == (-1, length, 1)
    outputs = _run(session, child.run_id).outputs
    assert [m.model_id for m in outputs.model_outputs] == [info.model_id]
    model_experiment = session.client.get_logged_model(info.model_id).experiment_id
    assert model_experiment == session.experiment_id


def test_the_dataset_is_a_run_input_with_its_digest(session: MlflowSession, child: MlflowTracker) -> None:
    digest = "0123456789abcdef" * 4  # a sha256 hex digest: longer than the 36 characters MLflow keeps
    child.log_dataset("processed", digest, "/data/processed/manifest.json")
    child.log_dataset("processed", digest, "/data/processed/manifest.json")  # resume logs it again
    inputs = _run(session, child.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    assert dataset.name == "processed"
    assert dataset.digest == digest[:36]
    assert json.loads(dataset.profile)["digest"] == digest
    assert json.loads(dataset.source)["uri"] == "/data/processed/manifest.json"


def test_tracked_ends_mlflow_runs_finished_failed_or_killed(session: MlflowSession) -> None:
    parent = session.parent_run("stamp-status")
    runs = {name: session.child(parent, name, {}) for name in ("ok", "crash", "interrupt")}
    with tracked(runs["ok"]):
        runs["ok"].log_metrics({"val/ccc": 0.5}, step=0)
    with pytest.raises(RuntimeError), tracked(runs["crash"]):
        raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt), tracked(runs["interrupt"]):
        raise KeyboardInterrupt
    statuses = {name: _run(session, tracker.run_id).info.status for name, tracker in runs.items()}
    assert statuses == {"ok": "FINISHED", "crash": "FAILED", "interrupt": "KILLED"}


def test_a_reopened_child_is_the_same_run(session: MlflowSession) -> None:
    parent = session.parent_run("stamp-resume")
    first = session.child(parent, "fold1-arousal", {"fold": "1"})
    first.log_params({"train.max_epochs": 5})
    first.log_metrics({"val/ccc": 0.3}, step=0)
    first.close("KILLED")

    again = session.child(parent, "fold1-arousal", {"fold": "1"}, run_id=first.run_id)
    assert again.run_id == first.run_id
    assert _run(session, again.run_id).info.status == "RUNNING"
    again.log_params({"train.max_epochs": 5})
    assert again.logged_steps("val/ccc") == {0}
    again.log_metrics({"val/ccc": 0.4}, step=1)
    again.close()

    named = session.client.search_runs([session.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert [r.info.run_id for r in named] == [first.run_id]
    assert named[0].info.status == "FINISHED"
    assert again.logged_steps("val/ccc") == {0, 1}


def test_a_child_named_by_stamp_and_one_of_an_older_store_are_the_same_run(session: MlflowSession) -> None:
    """Children are named ``<stamp>/<run folder>``; a store written before names them ``<run folder>``."""
    assert child_run_name("stamp-names", "fold0-valence") == "stamp-names/fold0-valence"
    assert run_folder_name("stamp-names/fold0-valence") == run_folder_name("fold0-valence") == "fold0-valence"
    parent = session.parent_run("stamp-names")
    session.child(parent, "fold0-valence", {}).close("KILLED")  # the older name
    session.child(parent, child_run_name("stamp-names", "fold0-valence"), {}).close("FINISHED")  # started again
    assert session.settle_parent(parent) == "FINISHED"  # the latest attempt of fold0-valence counts


def test_reopening_an_unknown_run_names_it(session: MlflowSession) -> None:
    parent = session.parent_run("stamp-unknown")
    with pytest.raises(TagfError, match="0123456789abcdef0123456789abcdef.*MLFLOW_TRACKING_URI"):
        session.child(parent, "fold0-valence", {}, run_id="0123456789abcdef0123456789abcdef")


def test_the_parent_tracker_logs_to_the_parent_and_leaves_its_status(session: MlflowSession, tmp_path: Path) -> None:
    parent = session.parent_run("stamp-collect")
    (tmp_path / "summary.md").write_text("| fold |\n")
    tracker = session.parent_tracker(parent)
    with tracked(tracker):
        tracker.log_artifact(tmp_path / "summary.md")
        tracker.log_metrics({"collect/p": 0.5}, step=0)
    assert _artifacts(session, parent) == {"summary.md"}
    assert _run(session, parent).info.status == "FINISHED"


def test_a_local_store_needs_no_server_check(session: MlflowSession, monkeypatch: pytest.MonkeyPatch) -> None:
    contacted: list[object] = []
    monkeypatch.setattr("urllib.request.urlopen", lambda *args, **kwargs: contacted.append(args) or nullcontext())
    session.check_reachable()  # sqlite: nothing to contact
    assert session.tracking_uri.startswith("sqlite:") and contacted == []
    remote = MlflowSession("http://tracking.invalid:5000", "tagf", Path("mlruns"))
    remote.check_reachable()  # the same check does contact a server (here: the stub, which answers)
    assert len(contacted) == 1


def test_an_unreachable_server_fails_fast_with_one_line(tmp_path: Path) -> None:
    dead = MlflowSession("http://127.0.0.1:9", "tagf", tmp_path / "mlruns")  # port 9 (discard): closed
    with pytest.raises(TagfError) as error:
        dead.check_reachable(timeout_s=2)
    message = str(error.value)
    assert "http://127.0.0.1:9" in message and "MLFLOW_TRACKING_URI" in message
    assert "\n" not in message


@pytest.mark.parametrize("environment", [None, "sqlite:///elsewhere.db"])
def test_pointing_mlflow_at_the_store_for_a_block_puts_everything_back(
    session: MlflowSession, monkeypatch: pytest.MonkeyPatch, environment: str | None
) -> None:
    import mlflow

    if environment is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", environment)
    before = mlflow.get_tracking_uri()
    with session.global_tracking_uri():
        assert mlflow.get_tracking_uri() == session.tracking_uri
    assert mlflow.get_tracking_uri() == before
    assert os.environ.get("MLFLOW_TRACKING_URI") == environment


def test_tagf_uses_no_private_mlflow_module_or_function() -> None:
    """Private MLflow names change without notice between releases."""
    core = Path(__file__).parents[3] / "tagf_core"
    private = re.compile(r"mlflow(?:\.\w+)*\._\w+|from mlflow(?:\.\w+)* import _\w+")
    found = {str(p.relative_to(core)): private.findall(p.read_text()) for p in core.rglob("*.py")}
    assert {path: names for path, names in found.items() if names} == {}
