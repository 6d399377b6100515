"""The process pool: a bug or a dead worker fails its trial, never the run; warnings come back with outcomes."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from preprocessing.publish import TrialOutcome, publish_trial
from preprocessing.runner import run_jobs
from tagf_core.data.layout import TrialRecord, read_manifest


def _record(trial: str) -> TrialRecord:
    return TrialRecord(
        trial=trial,
        video=f"{trial}.mp4",
        partition="extra",
        length=2,
        fps=30.0,
        frames_without_face=0,
        face_source="cropped_aligned",
        has_audio=True,
        input_digest="0" * 64,
    )


def _job(trial: str, out: Path, crash: str) -> TrialOutcome:
    if trial == crash == "bug":
        raise ValueError("unexpected")
    if trial == crash == "dies":
        os._exit(3)  # a worker killed mid-trial, e.g. by the out-of-memory killer
    logging.getLogger("preprocessing.faces").warning("%s: one crop was corrupt", trial)
    arrays = {
        "video.npy": np.zeros((2, 48, 48, 3), np.uint8),
        "logmel.npy": np.zeros((2, 96, 64), np.float16),
        "frames.npy": np.arange(2, dtype=np.int32),
    }
    publish_trial(out, _record(trial), arrays)
    return TrialOutcome(trial, "done", _record(trial))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bug_in_one_trial_fails_only_that_trial(tmp_path: Path, workers: int) -> None:
    jobs = [(t, (t, tmp_path, "bug")) for t in ("a", "bug", "c")]
    report = run_jobs(_job, jobs, tmp_path, workers=workers)
    assert [o.status for o in report.outcomes] == ["done", "failed", "done"]
    failed = report.failed[0]
    assert failed.message == "bug: internal error ValueError: unexpected (a bug: please report it)"
    assert "Traceback" in failed.detail
    assert [r.trial for r in read_manifest(tmp_path)] == ["a", "c"]
    assert report.done[0].warnings == ("a: one crop was corrupt",)  # logged in the worker, returned here


def test_a_dead_worker_fails_its_trials_and_the_manifest_keeps_the_finished_ones(tmp_path: Path) -> None:
    finished = run_jobs(_job, [("a", ("a", tmp_path, ""))], tmp_path, workers=1)
    assert finished.done
    jobs = [(t, (t, tmp_path, "dies")) for t in ("a", "dies")]
    report = run_jobs(_job, jobs, tmp_path, workers=2)
    statuses = {o.trial: o.status for o in report.outcomes}
    assert statuses["dies"] == "failed"
    assert "a worker process died" in next(o.message for o in report.failed if o.trial == "dies")
    assert (tmp_path / "manifest.json").exists()
    assert (tmp_path / "a" / "trial.json").exists()  # what finished before is never lost


def test_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        run_jobs(_job, [("a", ("a", tmp_path, ""))], tmp_path, workers=1)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "a" / "trial.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "manifest.json").stat().st_mode) == 0o644
