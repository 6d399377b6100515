"""`preprocess_release` end to end on synthetic releases: outputs, alignment, re-runs, bad input, kills."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocessing import preprocess_release
from preprocessing.annotations import read_annotation
from preprocessing.faces import resize_bicubic
from preprocessing.logmel import log_mel_rows
from preprocessing.media import read_video
from tagf_core.data.layout import check_trial_arrays, read_manifest
from tagf_synth import SynthReport

TRAIN_SET = Path("Annotations/VA_Estimation_Challenge/Train_Set")


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def processed(synth_release: SynthReport, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("processed") / "out"
    report = preprocess_release(synth_release.out, out, workers=2)
    assert not report.failed, [o.message for o in report.failed]
    return out


def test_every_trial_is_written_with_its_partition_and_arrays(synth_release: SynthReport, processed: Path) -> None:
    records = {r.trial: r for r in read_manifest(processed)}
    assert sorted(records) == sorted(synth_release.train + synth_release.validate + synth_release.test)
    for trial in synth_release.train:
        assert records[trial].partition == "train"
    for trial in synth_release.validate:
        assert records[trial].partition == "validate"
    for trial in synth_release.test:
        assert records[trial].partition == "extra"
        assert not (processed / trial / "VA_continuous_label.npy").exists()
    for record in records.values():
        check_trial_arrays(processed, record)
    assert not (processed / ".partial").exists()


def test_pair_shares_one_video_and_fallbacks_are_recorded(processed: Path) -> None:
    records = {r.trial: r for r in read_manifest(processed)}
    pair = [r for name, r in records.items() if name.endswith(("_left", "_right"))]
    assert len(pair) == 2 and pair[0].video == pair[1].video
    assert any(r.face_source == "haar_cascade" for r in records.values())
    silent = [r for r in records.values() if not r.has_audio]
    assert len(silent) == 1
    logmel = np.load(processed / silent[0].trial / "logmel.npy")
    np.testing.assert_allclose(logmel.astype(np.float32), np.log(0.01), atol=1e-3)  # silence, ref frontend


def test_unlabelled_trial_length_is_the_video_frame_count(synth_release: SynthReport, processed: Path) -> None:
    records = {r.trial: r for r in read_manifest(processed)}
    for trial in synth_release.test:
        video = read_video(synth_release.out / "videos" / records[trial].video, want_audio=False)
        assert records[trial].length == video.frame_count
        frames = np.load(processed / trial / "frames.npy")
        assert frames.dtype == np.int32
        np.testing.assert_array_equal(frames, np.arange(video.frame_count))  # every frame kept, in order


def test_labels_faces_and_logmel_stay_aligned_around_mid_video_gaps(
    synth_release: SynthReport, processed: Path
) -> None:
    """Row j of every array is video frame kept[j], also after a block of -5 rows in the middle; frames.npy
    says so."""
    records = {r.trial: r for r in read_manifest(processed)}
    checked = 0
    for trial in synth_release.train:
        record = records[trial]
        annotation = read_annotation(synth_release.out / TRAIN_SET / f"{trial}.txt")
        kept = annotation.kept_frames
        gaps = np.flatnonzero(np.diff(kept) > 1)
        assert gaps.size, f"{trial}: the synthetic release should have a -5 block mid-video"
        assert kept[0] > 0, f"{trial}: the synthetic release should have -5 rows at the start"
        frames = np.load(processed / trial / "frames.npy")
        assert frames.dtype == np.int32
        np.testing.assert_array_equal(frames, kept)  # Haar-cascade trials too
        if record.face_source != "cropped_aligned":
            continue
        labels = np.load(processed / trial / "VA_continuous_label.npy")
        np.testing.assert_array_equal(labels, annotation.values[kept])

        faces = np.load(processed / trial / "video.npy")
        video = read_video(synth_release.out / "videos" / record.video)
        rows = log_mel_rows(video.audio)
        logmel = np.load(processed / trial / "logmel.npy")
        for j in {0, int(gaps[0]), int(gaps[0]) + 1, len(kept) - 1}:
            frame = int(kept[j])
            crop_file = synth_release.out / "cropped_aligned" / trial / f"{frame + 1:05d}.jpg"
            if crop_file.exists():
                crop = cv2.cvtColor(cv2.imread(str(crop_file)), cv2.COLOR_BGR2RGB)
                np.testing.assert_array_equal(faces[j], resize_bicubic(crop[None], 48)[0])
            else:
                assert not faces[j].any()
            start = round(frame * 100 / record.fps)
            if start + 96 > len(rows):  # past the last complete patch: the reference repeats that patch
                last_fit = max(i for i in range(frame + 1) if round(i * 100 / record.fps) + 96 <= len(rows))
                start = round(last_fit * 100 / record.fps)
            np.testing.assert_array_equal(logmel[j], rows[start : start + 96].astype(np.float16))
        checked += 1
    assert checked >= 2


def test_rerun_skips_everything_and_changes_nothing(synth_release: SynthReport, processed: Path) -> None:
    before = _tree_bytes(processed)
    report = preprocess_release(synth_release.out, processed, workers=1)
    assert {o.status for o in report.outcomes} == {"skipped"}
    assert _tree_bytes(processed) == before


def test_a_changed_input_is_redone_and_an_incomplete_trial_is_repaired(release_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    preprocess_release(release_copy, out, workers=1)
    annotation = next((release_copy / TRAIN_SET).glob("*.txt"))
    lines = annotation.read_text().splitlines()
    lines[-1] = "0.5,0.5"  # re-label the last frame
    annotation.write_text("\n".join(lines) + "\n")
    broken = sorted(p for p in out.iterdir() if p.is_dir())[-1]
    (broken / "logmel.npy").unlink()
    report = preprocess_release(release_copy, out, workers=1)
    done = {o.trial for o in report.done}
    assert done == {annotation.stem, broken.name}
    assert len(report.skipped) == len(report.outcomes) - len(done)


def test_the_reference_layout_gives_the_same_arrays(
    synth_release: SynthReport, processed: Path, tmp_path: Path
) -> None:
    renamed = tmp_path / "renamed"
    shutil.copytree(synth_release.out / "cropped_aligned", renamed / "cropped_aligned")
    shutil.copytree(synth_release.out / "videos", renamed / "raw_videos" / "batch1")
    official = synth_release.out / "Annotations" / "VA_Estimation_Challenge"
    shutil.copytree(official / "Train_Set", renamed / "6th_ABAW_Annotations" / "VA" / "train")
    shutil.copytree(official / "Validation_Set", renamed / "6th_ABAW_Annotations" / "VA" / "validate")
    out = tmp_path / "out"
    report = preprocess_release(renamed, out, workers=1)
    assert not report.failed
    # no test list here: the unlabelled trial is found as a cropped_aligned folder without annotations
    assert read_manifest(out) == read_manifest(processed)
    for record in read_manifest(out):
        for name in record.expected_files():
            assert (out / record.trial / name).read_bytes() == (processed / record.trial / name).read_bytes()


def _break(release: Path, case: str) -> tuple[str, str]:
    """Damage one trial of ``release``; return (trial name, text its failure message must contain)."""
    annotations = sorted((release / TRAIN_SET).glob("*.txt"))
    annotation = next(
        p
        for p in annotations
        if (release / "cropped_aligned" / p.stem).is_dir() and not p.stem.endswith(("_left", "_right"))
    )
    lines = annotation.read_text().splitlines()
    trial = annotation.stem
    if case == "header":
        annotation.write_text("arousal,valence\n" + "\n".join(lines[1:]) + "\n")
        return trial, f"{annotation.name}:1"
    if case == "malformed":
        lines[5] = "0.1;0.2"
        annotation.write_text("\n".join(lines) + "\n")
        return trial, f"{annotation.name}:6"
    if case == "short":
        lines[7] = "0.1"
        annotation.write_text("\n".join(lines) + "\n")
        return trial, f"{annotation.name}:8"
    if case == "range":
        lines[9] = "1.5,0.2"
        annotation.write_text("\n".join(lines) + "\n")
        return trial, f"{annotation.name}:10"
    if case == "too_long":
        annotation.write_text("\n".join(lines + ["0.1,0.1"] * 40) + "\n")
        return trial, "annotation rows but"
    if case == "corrupt_video":
        video = next(v for v in (release / "videos").iterdir() if v.stem == trial)
        video.write_bytes(b"\x00not a video" * 100)
        return trial, f"{video.name}: corrupt or unreadable video"
    if case == "empty_faces":
        faces = release / "cropped_aligned" / trial
        shutil.rmtree(faces)
        faces.mkdir()
        return trial, "cropped_aligned"
    if case == "misnamed_crops":
        faces = release / "cropped_aligned" / trial
        for crop in faces.glob("*.jpg"):
            crop.rename(faces / f"{int(crop.stem)}.jpg")  # 1.jpg instead of 00001.jpg: no kept frame matches
        return trial, "none of the"
    if case == "escape":
        test_list = next(release.glob("*test_set_release*.txt"))
        test_list.write_text(test_list.read_text() + "../../outside\n")
        return "../../outside", "is not allowed"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["header", "malformed", "short", "range", "too_long", "corrupt_video", "empty_faces", "misnamed_crops", "escape"],
)
def test_bad_input_fails_its_trial_in_one_line_and_the_rest_complete(
    release_copy: Path, tmp_path: Path, case: str
) -> None:
    trial, expected = _break(release_copy, case)
    out = tmp_path / "out"
    report = preprocess_release(release_copy, out, workers=2)
    failed = {o.trial: o.message for o in report.failed}
    assert trial in failed, failed
    assert expected in failed[trial]
    assert "\n" not in failed[trial]
    assert not (out / trial).exists() or case == "escape"
    good = {r.trial for r in read_manifest(out)}
    assert trial not in good
    assert len(good) >= len(report.outcomes) - len(failed)
    assert not (tmp_path / "outside").exists()
    for record in read_manifest(out):
        check_trial_arrays(out, record)


def test_videos_are_found_at_any_depth(release_copy: Path, tmp_path: Path) -> None:
    deep = release_copy / "batch1" / "a" / "b" / "c" / "d" / "e"
    shutil.move(release_copy / "videos", deep)
    report = preprocess_release(release_copy, tmp_path / "out", workers=2)
    assert not report.failed, [o.message for o in report.failed]


def test_killed_run_then_rerun_equals_an_uninterrupted_run(
    synth_release: SynthReport, processed: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tagf_cli", "preprocess", "--data-root", str(synth_release.out)]
    command += ["--out", str(out), "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if out.is_dir() and any((p / "trial.json").exists() for p in out.iterdir() if p.is_dir()):
            break
        time.sleep(0.01)
    finished_before_kill = process.poll() is not None
    if not finished_before_kill:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    if not finished_before_kill:
        assert not (out / "manifest.json").exists()  # killed before the end: no manifest yet
    report = preprocess_release(synth_release.out, out, workers=2)
    assert not report.failed
    assert not finished_before_kill and report.skipped, "the kill should land after the first trial"
    assert _tree_bytes(out) == _tree_bytes(processed)


def _session_processes(session: int) -> list[str]:
    """``pid command`` of every live process of a session (the command and all it started, reparented or not)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended meanwhile
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp session ...
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(f"{stat.parent.name} {text[text.index('(') : text.rindex(')') + 1]}")
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_worker_outlives_a_killed_preprocess_and_a_rerun_equals_an_uninterrupted_run(
    synth_release: SynthReport, processed: Path, tmp_path: Path, kill: signal.Signals
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tagf_cli", "preprocess", "--data-root", str(synth_release.out)]
    command += ["--out", str(out), "--workers", "2"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if out.is_dir() and any((p / "trial.json").exists() for p in out.iterdir() if p.is_dir()):
            break
        time.sleep(0.01)
    assert process.poll() is None, "the kill should land after the first trial, before the last"
    os.kill(process.pid, kill)  # the command alone, as `timeout`, `docker stop` or the OOM killer do
    process.wait(timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _session_processes(process.pid):
        time.sleep(0.1)
    assert _session_processes(process.pid) == []  # no worker survives its command
    published = sorted(p.name for p in out.iterdir())
    time.sleep(1)
    assert sorted(p.name for p in out.iterdir()) == published  # nothing keeps publishing into OUT
    if kill == signal.SIGTERM:
        assert process.returncode != 0 and process.stderr is not None
        assert "interrupted" in process.stderr.read(), process.returncode

    report = preprocess_release(synth_release.out, out, workers=2)
    assert not report.failed and report.skipped
    assert _tree_bytes(out) == _tree_bytes(processed)
