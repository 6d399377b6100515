"""The Tracker protocol's in-memory implementation, and ``tracked`` closing runs however they end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tagf_core.errors import TagfError
from tagf_core.tracking.tracker import InMemoryTracker, Tracker, tracked


def test_in_memory_tracker_records_what_it_is_given(tmp_path: Path) -> None:
    (tmp_path / "plots" / "sub").mkdir(parents=True)
    (tmp_path / "plots" / "curves.png").write_bytes(b"png")
    (tmp_path / "plots" / "sub" / "t.png").write_bytes(b"png")
    (tmp_path / "config.toml").write_text("x = 1\n")
    tracker: Tracker = InMemoryTracker(run_id="r1")
    model = torch.nn.Linear(2, 1)

    tracker.log_params({"train.batch_size": 12, "model.name": "tagf"})
    tracker.log_metrics({"val/ccc": 0.5, "train/loss": 0.25}, step=0)
    tracker.log_metrics({"val/ccc": 0.6}, step=1)
    tracker.log_artifact(tmp_path / "config.toml")
    tracker.log_artifact(tmp_path / "plots", "plots")
    tracker.log_artifact(tmp_path / "config.toml", "config")
    tracker.log_model(model, {"x": torch.ones(1, 2)}, "model")
    tracker.log_dataset("processed", "abc123", "/data/manifest.json")
    tracker.set_tags({"fold": "0"})
    with torch.no_grad():
        model.weight.fill_(7.0)  # the tracker kept the model as it was when logged
    tracker.close("FINISHED")

    assert isinstance(tracker, InMemoryTracker)
    assert tracker.params == {"train.batch_size": "12", "model.name": "tagf"}
    assert tracker.metrics == [("val/ccc", 0.5, 0), ("train/loss", 0.25, 0), ("val/ccc", 0.6, 1)]
    assert tracker.metric("val/ccc") == {0: 0.5, 1: 0.6}
    assert tracker.logged_steps("val/ccc") == {0, 1}
    assert tracker.logged_steps("train/loss") == {0}
    assert tracker.logged_steps("lr") == set()
    assert tracker.artifacts[0] == (tmp_path / "config.toml", None)
    assert tracker.artifact_files == {"config.toml", "plots/curves.png", "plots/sub/t.png", "config/config.toml"}
    name, logged_model, example = tracker.models[0]
    assert name == "model" and set(example) == {"x"}
    assert isinstance(logged_model, torch.nn.Linear) and not bool((logged_model.weight == 7.0).all())
    assert tracker.datasets == [("processed", "abc123", "/data/manifest.json")]
    assert tracker.tags == {"fold": "0"}
    assert tracker.status == "FINISHED"


def test_a_folder_without_artifact_path_keeps_its_name(tmp_path: Path) -> None:
    (tmp_path / "predictions" / "extra").mkdir(parents=True)
    (tmp_path / "predictions" / "extra" / "t.txt").write_text("valence\n0.1\n")
    tracker = InMemoryTracker()
    tracker.log_artifact(tmp_path / "predictions")
    assert tracker.artifact_files == {"predictions/extra/t.txt"}
    with pytest.raises(FileNotFoundError, match="missing"):
        tracker.log_artifact(tmp_path / "missing")


def test_params_are_idempotent_for_equal_values_and_refuse_a_different_one() -> None:
    tracker = InMemoryTracker(run_id="r1")
    tracker.log_params({"train.lr": 0.0001, "train.seed": 3407})
    tracker.log_params({"train.lr": "0.0001", "train.seed": 3407, "train.new": True})  # resume: same values
    assert tracker.params == {"train.lr": "0.0001", "train.seed": "3407", "train.new": "True"}

    with pytest.raises(TagfError) as error:
        tracker.log_params({"train.lr": 0.001, "train.other": 1})
    message = str(error.value)
    assert "train.lr" in message and "'0.0001'" in message and "'0.001'" in message and "\n" not in message
    assert "train.other" not in tracker.params  # nothing logged from a refused call


def test_tracked_finishes_on_success() -> None:
    tracker = InMemoryTracker()
    with tracked(tracker) as inside:
        assert inside is tracker
        assert tracker.status == "RUNNING"
    assert tracker.status == "FINISHED"


@pytest.mark.parametrize(
    ("error", "status"),
    [(RuntimeError("boom"), "FAILED"), (TagfError("bad input"), "FAILED"), (KeyboardInterrupt(), "KILLED")],
)
def test_tracked_marks_failed_or_killed_and_reraises(error: BaseException, status: str) -> None:
    tracker = InMemoryTracker()
    with pytest.raises(type(error)), tracked(tracker):
        raise error
    assert tracker.status == status


def test_sigterm_ends_the_run_killed_and_the_handler_is_restored() -> None:
    # a test before this one in the same worker may have left a handler (ray.init installs one): start clean
    earlier = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        tracker = InMemoryTracker()
        with pytest.raises(SystemExit) as exit_info, tracked(tracker):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler's SystemExit interrupts the sleep at once
        assert exit_info.value.code == 128 + signal.SIGTERM
        assert tracker.status == "KILLED"
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, earlier)


class _CloseFails(InMemoryTracker):
    def close(self, status: str = "FINISHED") -> None:  # type: ignore[override]
        raise ConnectionError("tracking server gone")


def test_an_error_while_closing_does_not_hide_the_original_error() -> None:
    with pytest.raises(ValueError, match="the real problem"), tracked(_CloseFails()):
        raise ValueError("the real problem")


def test_importing_the_tracking_modules_loads_neither_mlflow_nor_torch() -> None:
    code = (
        "import sys, tagf_core.tracking, tagf_core.tracking.tracker, tagf_core.tracking.mlflow_tracker, "
        "tagf_core.tracking.plots; print(' '.join(sorted(sys.modules)))"
    )
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    assert not {"mlflow", "torch", "matplotlib"} & loaded
