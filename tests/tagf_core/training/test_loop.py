"""The training loop on a tiny preprocessed set: files, tracked metrics, exact resume, refusals, failures."""

from __future__ import annotations

import csv
import json
import math
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tagf_core.config import TagfConfig, load_config
from tagf_core.data.layout import (
    FRAMES_FILE,
    LABEL_FILE,
    LOGMEL_FILE,
    VIDEO_FILE,
    TrialRecord,
    write_manifest,
)
from tagf_core.data.windows import list_windows
from tagf_core.errors import TagfError
from tagf_core.tracking.tracker import InMemoryTracker
from tagf_core.training.checkpoint import load_torch
from tagf_core.training.loop import train_run
from tagf_core.training.run import RunPaths, RunSpec

TRIALS = [  # (name, partition, T): 5 train, 1 validate, 1 unseen; one trial shorter than a window
    ("a_left", "train", 30),
    ("a_right", "train", 26),
    ("b", "train", 20),
    ("c", "train", 11),
    ("d", "train", 24),
    ("v", "validate", 28),
    ("x", "extra", 18),
]


def _write_processed(root: Path) -> None:
    rng = np.random.default_rng(0)
    records = []
    for name, partition, length in TRIALS:
        record = TrialRecord(name, f"{name}.mp4", partition, length, 30.0, 0, "cropped_aligned", True, "0" * 64)  # type: ignore[arg-type]
        folder = root / name
        folder.mkdir(parents=True)
        labels = np.clip(np.sin(np.arange(length)[:, None] / 4 + [0.0, 1.0]) * 0.8, -1, 1).astype(np.float32)
        frames = np.arange(length, dtype=np.int32) + (3 if record.labelled else 0)
        np.save(folder / FRAMES_FILE, frames)
        faces = (rng.integers(0, 60, (length, 48, 48, 3)) + (labels[:, :1, None, None] * 90 + 120)).astype(np.uint8)
        np.save(folder / VIDEO_FILE, faces)
        logmel = rng.normal(-4, 0.5, (length, 96, 64)) + labels[:, 1:, None] * 2
        np.save(folder / LOGMEL_FILE, logmel.astype(np.float16))
        if record.labelled:
            np.save(folder / LABEL_FILE, labels)
        records.append(record)
    write_manifest(root, records)


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "processed"
    _write_processed(root)
    return root


def _config(processed: Path, output_root: Path, **train: Any) -> TagfConfig:
    return load_config(
        overrides={
            "data": {"processed_root": processed, "window_len": 16, "hop_len": 8},
            "model": {"video_tcn_channels": [16, 16], "audio_tcn_channels": [8, 8]},
            "train": {
                "backbone": "frozen",
                "batch_size": 4,
                "max_epochs": 4,
                "min_epochs": 1,
                "learning_rate": 1e-3,
                "output_root": output_root,
                "seed": 7,
                **train,
            },  # fmt: skip
        }
    )


def _run(cfg: TagfConfig, tracker: InMemoryTracker, **kwargs: Any) -> Any:
    return train_run(cfg, RunSpec("test", 0, "valence"), lambda run_id: tracker, **kwargs)


def test_a_run_writes_its_files_and_tracks_every_epoch(processed: Path, tmp_path: Path) -> None:
    tracker = InMemoryTracker()
    result = _run(_config(processed, tmp_path), tracker)
    paths = RunPaths.of(tmp_path, RunSpec("test", 0, "valence"))
    assert result.epochs_run == 4 and result.stop_reason == "max_epochs"
    assert tracker.status == "FINISHED"
    assert sorted(tracker.metric("val/ccc")) == [0, 1, 2, 3]
    assert {"train/loss", "train/ccc", "val/loss", "val/rmse", "val/pcc", "lr", "release_stage"} <= {
        key for key, _, _ in tracker.metrics
    }
    assert tracker.metric("best/val_ccc")[4] == pytest.approx(result.best_val_ccc)
    assert tracker.params["train.batch_size"] == "4" and tracker.params["data.window_len"] == "16"
    assert tracker.datasets and tracker.models and tracker.models[0][0] == "model"
    with paths.log.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3] and float(rows[0]["epoch_seconds"]) > 0
    summary = json.loads(paths.summary.read_text())
    assert summary["best_val_ccc"] == pytest.approx(result.best_val_ccc) and summary["fold"] == 0
    validate = (paths.predictions("validate") / "v.csv").read_text().splitlines()
    assert validate[0] == "frame,label,prediction" and len(validate) == 1 + 28
    assert validate[1].startswith("4,")  # 1-based video frame number of the first kept row (frame index 3)
    extra = (paths.predictions("extra") / "x.txt").read_text().splitlines()
    assert extra[0] == "valence" and len(extra) == 1 + 18
    assert (paths.plots / "curves.png").stat().st_size > 0
    best = load_torch(paths.best, "best")
    assert best["epoch"] == result.best_epoch
    assert load_torch(paths.checkpoint, "checkpoint")["state"]["run_id"] == tracker.run_id


def test_an_existing_run_is_never_overwritten_silently(processed: Path, tmp_path: Path) -> None:
    cfg = _config(processed, tmp_path, max_epochs=1)
    _run(cfg, InMemoryTracker())
    with pytest.raises(TagfError, match="tagf resume.*--overwrite"):
        _run(cfg, InMemoryTracker())
    again = _run(cfg, InMemoryTracker(), overwrite=True)
    assert again.epochs_run == 1


class _Crash(Exception):
    pass


class _CrashAt:
    """Callbacks that raise in the middle of an epoch, as a kill would interrupt it."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.current = epoch, -1

    def on_embedding_start(self, trials: int) -> None:
        pass

    def on_embedded(self, trial: str) -> None:
        pass

    def on_epoch_start(self, epoch: int, max_epochs: int, num_batches: int) -> None:
        self.current = epoch

    def on_batch(self) -> None:
        if self.current == self.epoch:
            raise _Crash("killed mid-epoch")

    def on_epoch_end(self, row: dict[str, float]) -> None:
        pass


def _final_weights(root: Path) -> dict[str, torch.Tensor]:
    return load_torch(RunPaths.of(root, RunSpec("test", 0, "valence")).checkpoint, "checkpoint")["model"]


def test_a_run_interrupted_mid_epoch_and_resumed_equals_an_uninterrupted_one(processed: Path, tmp_path: Path) -> None:
    straight_tracker = InMemoryTracker()
    _run(_config(processed, tmp_path / "straight"), straight_tracker)

    interrupted = InMemoryTracker(run_id="run-1")
    with pytest.raises(_Crash):
        _run(_config(processed, tmp_path / "resumed"), interrupted, callbacks=_CrashAt(2))
    assert interrupted.status == "FAILED"
    assert sorted(interrupted.metric("val/ccc")) == [0, 1]
    _run(_config(processed, tmp_path / "resumed"), interrupted, resume=True)
    assert interrupted.status == "FINISHED"

    straight, resumed = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0)
    assert interrupted.metric("val/ccc") == straight_tracker.metric("val/ccc")  # same values, no step twice
    assert [step for key, _, step in interrupted.metrics if key == "val/ccc"] == [0, 1, 2, 3]


def test_max_epochs_extends_a_finished_run(processed: Path, tmp_path: Path) -> None:
    tracker = InMemoryTracker()
    _run(_config(processed, tmp_path, max_epochs=2), tracker)
    result = _run(_config(processed, tmp_path, max_epochs=3), tracker, resume=True)
    assert result.epochs_run == 3 and sorted(tracker.metric("val/ccc")) == [0, 1, 2]


def test_resume_without_a_run_is_refused(processed: Path, tmp_path: Path) -> None:
    with pytest.raises(TagfError, match="no run to resume"):
        _run(_config(processed, tmp_path), InMemoryTracker(), resume=True)


def test_release_mode_trains_and_releases_the_first_stage(processed: Path, tmp_path: Path) -> None:
    tracker = InMemoryTracker()
    result = _run(_config(processed, tmp_path, backbone="release", max_epochs=1), tracker)
    assert result.epochs_run == 1
    assert tracker.metric("release_stage") == {0: 1.0}  # ref §3.4: the epoch-0 milestone releases stage 1


def test_a_start_that_fails_on_bad_input_leaves_no_run_folder_behind(processed: Path, tmp_path: Path) -> None:
    cfg = _config(processed, tmp_path, weights_dir=tmp_path / "no-such-folder")
    with pytest.raises(TagfError, match="weights folder not found"):
        _run(cfg, InMemoryTracker())
    assert not (tmp_path / "test").exists()  # so the next `tagf train` is not refused as a name collision


def test_bf16_autocast_trains_to_finite_numbers_that_differ_from_fp32(processed: Path, tmp_path: Path) -> None:
    fp32, bf16 = InMemoryTracker(), InMemoryTracker()
    _run(_config(processed, tmp_path / "fp32", max_epochs=2), fp32)
    result = _run(_config(processed, tmp_path / "bf16", max_epochs=2, precision="bf16"), bf16)
    assert result.epochs_run == 2 and math.isfinite(result.best_val_ccc)
    assert bf16.params["train.precision"] == "bf16"
    assert bf16.metric("train/loss") != fp32.metric("train/loss")  # it really ran in bfloat16


def test_a_compiled_forward_trains_and_is_recorded(processed: Path, tmp_path: Path) -> None:
    tracker = InMemoryTracker()
    result = _run(_config(processed, tmp_path, max_epochs=2, compile=True), tracker)
    assert result.epochs_run == 2 and math.isfinite(result.best_val_ccc)
    assert tracker.params["train.compile"] == "True" and tracker.models  # the logged model is the plain module


def _checkpoint_model(root: Path, spec: RunSpec) -> dict[str, torch.Tensor]:
    return load_torch(RunPaths.of(root, spec).checkpoint, "checkpoint")["model"]


def test_precise_batchnorm_recomputes_the_statistics_each_epoch_and_the_reference_mode_does_not(
    processed: Path, tmp_path: Path
) -> None:
    """precise (the default): before every evaluation the BatchNorm statistics are recomputed over all training
    batches, so the checkpoint holds exactly that count; running (the reference, ref §3.5) keeps momentum
    averages that the greedy reload resets to the best epoch's."""
    spec = RunSpec("test", 0, "valence")
    lengths = {name: length for name, partition, length in TRIALS if partition == "train"}
    batches = math.ceil(len(list_windows(lengths, 16, 8)) / 4)
    _run(_config(processed, tmp_path / "precise"), InMemoryTracker())
    precise = _checkpoint_model(tmp_path / "precise", spec)
    for name in ("video_norm", "audio_norm", "head.norm"):
        assert int(precise[f"{name}.num_batches_tracked"]) == batches
    best = load_torch(RunPaths.of(tmp_path / "precise", spec).best, "best")["model"]
    assert int(best["head.norm.num_batches_tracked"]) == batches  # the best weights carry their own statistics
    tracker = InMemoryTracker()
    _run(_config(processed, tmp_path / "running", batchnorm_statistics="running"), tracker)
    running = _checkpoint_model(tmp_path / "running", spec)
    best_epoch = int(json.loads(RunPaths.of(tmp_path / "running", spec).summary.read_text())["best_epoch"])
    # the reference: one update per step up to the best epoch, then reloaded with the best weights
    assert int(running["head.norm.num_batches_tracked"]) == batches * (best_epoch + 1)
    assert tracker.params["train.batchnorm_statistics"] == "running"


@pytest.mark.parametrize("model", ["concat", "ridge", "ridge-video", "ridge-audio"])
def test_a_baseline_is_a_run_beside_tagf_with_the_same_files_and_metrics(
    processed: Path, tmp_path: Path, model: str
) -> None:
    spec = RunSpec("test", 0, "valence", model)  # type: ignore[arg-type]
    tracker = InMemoryTracker()
    result = train_run(_config(processed, tmp_path), spec, lambda run_id: tracker)
    paths = RunPaths.of(tmp_path, spec)
    assert paths.folder.name == f"fold0-valence-{model}" and result.folder == paths.folder
    summary = json.loads(paths.summary.read_text())
    assert summary["model"] == model and summary["best_val_ccc"] == pytest.approx(result.best_val_ccc)
    assert {"train/loss", "train/ccc", "val/loss", "val/ccc", "val/rmse", "val/pcc"} <= {
        k for k, _, _ in tracker.metrics
    }
    assert math.isfinite(result.best_val_ccc) and tracker.models
    assert len((paths.predictions("validate") / "v.csv").read_text().splitlines()) == 1 + 28
    assert (paths.predictions("extra") / "x.txt").read_text().splitlines()[0] == "valence"
    weights = load_torch(paths.best, "best")["model"]
    if model == "concat":
        assert not any(k.startswith(("cross_attention.", "video_gate.")) for k in weights)
        assert result.stop_reason != "probe_fitted"
    else:
        assert set(weights) == {"mean", "scale", "weight", "bias"}
        assert result.stop_reason == "probe_fitted" and len(tracker.metric("probe/alpha")) == 8
        assert tracker.metric("val/ccc")[result.best_epoch] == pytest.approx(result.best_val_ccc)


def test_a_probe_fitted_again_on_resume_logs_no_step_twice(processed: Path, tmp_path: Path) -> None:
    spec = RunSpec("test", 0, "arousal", "ridge")
    tracker = InMemoryTracker()
    first = train_run(_config(processed, tmp_path), spec, lambda run_id: tracker)
    RunPaths.of(tmp_path, spec).checkpoint.unlink()  # as if killed before the probe's single checkpoint
    again = train_run(_config(processed, tmp_path), spec, lambda run_id: tracker, resume=True)
    assert again.best_val_ccc == first.best_val_ccc
    assert [step for key, _, step in tracker.metrics if key == "val/ccc"] == list(range(8))


def test_a_probe_runs_on_the_embeddings_even_when_the_config_says_release(processed: Path, tmp_path: Path) -> None:
    spec = RunSpec("test", 0, "valence", "ridge")
    tracker = InMemoryTracker()
    train_run(_config(processed, tmp_path, backbone="release"), spec, lambda run_id: tracker)
    assert tracker.params["train.backbone"] == "frozen"
    assert 'backbone = "frozen"' in RunPaths.of(tmp_path, spec).config.read_text()


# ---- kills at every write point, and two processes on one run ---------------------------------------------------

KILL_POINTS = [  # (file replaced, its occurrence in the run, before or after the rename); order in test_loop's run:
    ("run.json", 1, "after"),  # run.json, config.toml, then per epoch checkpoint.pt, training_log.csv, best.pt
    ("config.toml", 1, "after"),
    ("checkpoint.pt", 1, "before"),  # epoch 0: no checkpoint yet, a temporary one written
    ("checkpoint.pt", 1, "after"),
    ("training_log.csv", 1, "after"),
    ("best.pt", 1, "before"),
    ("best.pt", 1, "after"),
    ("checkpoint.pt", 2, "before"),  # epoch 1, after a new best
    ("checkpoint.pt", 2, "after"),
    ("best.pt", 2, "before"),
    ("checkpoint.pt", 3, "after"),  # epoch 2, no new best
    ("checkpoint.pt", 4, "before"),  # the last save, after the loop
    ("summary.json", 1, "before"),  # the end-of-run artefacts
]
KILLED_EPOCHS = 3


def _final_state(root: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[list[str]]]:
    """The checkpoint's weights, best.pt's weights, and training_log.csv without its timing column."""
    paths = RunPaths.of(root, RunSpec("test", 0, "valence"))
    with paths.log.open() as handle:
        rows = [row for row in csv.reader(handle)]
    timing = rows[0].index("epoch_seconds")
    log = [row[:timing] + row[timing + 1 :] for row in rows]
    return _final_weights(root), load_torch(paths.best, "best")["model"], log


@pytest.fixture(scope="module")
def straight_run(processed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("straight")
    _run(_config(processed, root, max_epochs=KILLED_EPOCHS), InMemoryTracker())
    return root


@pytest.mark.parametrize(("kill_file", "occurrence", "phase"), KILL_POINTS)
def test_resume_after_a_sigkill_at_any_write_point_equals_an_uninterrupted_run(
    processed: Path, straight_run: Path, tmp_path: Path, kill_file: str, occurrence: int, phase: str
) -> None:
    child = Path(__file__).with_name("train_until_killed.py")
    arguments = [Path(__file__), processed, tmp_path, KILLED_EPOCHS, kill_file, occurrence, phase]
    killed = subprocess.run(
        [sys.executable, str(child), *map(str, arguments)], capture_output=True, text=True, timeout=600
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr  # the kill point was reached
    assert killed.stdout.split()[-1] == kill_file
    paths = RunPaths.of(tmp_path, RunSpec("test", 0, "valence"))
    if phase == "before":
        assert list(paths.folder.glob(f".{kill_file}.*.tmp"))  # the kill left a half-written temporary file

    _run(_config(processed, tmp_path, max_epochs=KILLED_EPOCHS), InMemoryTracker(), resume=True)

    straight_weights, straight_best, straight_log = _final_state(straight_run)
    weights, best, log = _final_state(tmp_path)
    assert log == straight_log
    for expected, got in ((straight_weights, weights), (straight_best, best)):
        assert expected.keys() == got.keys()
        for key in expected:
            assert torch.equal(got[key], expected[key]), key
    assert not list(paths.folder.glob(".*.tmp"))  # leftovers of the kill are gone


def test_a_run_held_by_a_live_process_is_refused_and_taken_over_once_it_dies(processed: Path, tmp_path: Path) -> None:
    cfg = _config(processed, tmp_path, max_epochs=1)
    lock = RunPaths.of(tmp_path, RunSpec("test", 0, "valence")).lock
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True
    )  # another `tagf train` of the same run, in the middle of training
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refusal = rf"being trained by tagf training test/fold0-valence \(pid {holder.pid} on"
        with pytest.raises(TagfError, match=refusal):
            _run(cfg, InMemoryTracker())
        assert not RunPaths.of(tmp_path, RunSpec("test", 0, "valence")).folder.exists()  # nothing of it touched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock.exists()  # the dead holder's lock file stays behind: a stale lock...
    assert _run(cfg, InMemoryTracker()).epochs_run == 1  # ...which never blocks anyone
    assert not lock.exists()  # released with the run


HOLD_LOCK = """
import sys, time
from tagf_core.locks import exclusive_lock
with exclusive_lock(sys.argv[1], "tagf training test/fold0-valence"):
    print("held", flush=True)
    time.sleep(600)
"""
