"""The synthetic dataset has the exact layout of the Aff-Wild2 valence–arousal release."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import av
import cv2
import pytest

from tagf_core.data.layout import check_trial_name
from tagf_synth import SynthReport

ANNOTATIONS = Path("Annotations") / "VA_Estimation_Challenge"
SET_FOLDERS = {"train": "Train_Set", "validate": "Validation_Set"}
TEST_LIST = "Valence_Arousal_Estimation_Challenge_test_set_release.txt"
SAMPLE = "ICCV_9th_ABAW_VA_test_set_sample.txt"
NUMBER = r"-?\d\.\d{3}"


def video_of(root: Path, trial: str) -> Path:
    stem = re.sub(r"_(left|right)$", "", trial)
    matches = sorted((root / "videos").glob(f"{stem}.*"))
    assert len(matches) == 1, f"{trial}: expected one video named {stem}.*, found {matches}"
    return matches[0]


def decoded_frame_count(video: Path) -> int:
    with av.open(str(video)) as container:
        return sum(1 for _ in container.decode(video=0))


def label_file(root: Path, report: SynthReport, trial: str) -> Path:
    if trial in report.test:
        return root / "synth_ground_truth" / f"{trial}.txt"
    partition = "train" if trial in report.train else "validate"
    return root / ANNOTATIONS / SET_FOLDERS[partition] / f"{trial}.txt"


def all_trials(report: SynthReport) -> list[str]:
    return report.train + report.validate + report.test


def test_every_partition_has_trials_and_they_are_disjoint(layout_dataset: SynthReport) -> None:
    report = layout_dataset
    assert report.train and report.validate and report.test
    assert len(set(all_trials(report))) == len(all_trials(report)) == 7


def test_labelled_trials_have_annotation_files_and_test_trials_none(layout_dataset: SynthReport) -> None:
    root = layout_dataset.out
    for partition, folder in SET_FOLDERS.items():
        written = sorted(p.stem for p in (root / ANNOTATIONS / folder).glob("*.txt"))
        assert written == sorted(getattr(layout_dataset, partition))
    annotated = {p.stem for p in (root / ANNOTATIONS).rglob("*.txt")}
    assert not annotated & set(layout_dataset.test)
    assert sorted(p.stem for p in (root / "synth_ground_truth").glob("*.txt")) == sorted(layout_dataset.test)


def test_annotation_files_have_the_header_and_values_in_range(layout_dataset: SynthReport) -> None:
    for trial in all_trials(layout_dataset):
        lines = label_file(layout_dataset.out, layout_dataset, trial).read_text(encoding="utf-8").splitlines()
        assert lines[0] == "valence,arousal"
        for line in lines[1:]:
            if line == "-5,-5":
                continue
            assert re.fullmatch(f"{NUMBER},{NUMBER}", line), f"{trial}: bad row {line!r}"
            valence, arousal = (float(v) for v in line.split(","))
            assert -1.0 <= valence <= 1.0 and -1.0 <= arousal <= 1.0
            assert "-0.000" not in line


def test_unannotated_rows_come_at_start_in_the_middle_and_at_end(layout_dataset: SynthReport) -> None:
    for trial in all_trials(layout_dataset):
        rows = label_file(layout_dataset.out, layout_dataset, trial).read_text(encoding="utf-8").splitlines()[1:]
        missing = [row == "-5,-5" for row in rows]
        assert missing[0] and missing[-1], trial
        # A -5 block strictly inside the trial: annotated rows before and after it.
        first_annotated = missing.index(False)
        last_annotated = len(missing) - 1 - missing[::-1].index(False)
        assert any(missing[first_annotated:last_annotated]), f"{trial}: no -5 block in the middle"
        assert 0.5 < missing.count(False) / len(missing) < 0.95


def test_annotation_rows_equal_the_decoded_video_frames(layout_dataset: SynthReport) -> None:
    for trial in all_trials(layout_dataset):
        rows = label_file(layout_dataset.out, layout_dataset, trial).read_text(encoding="utf-8").splitlines()[1:]
        video = video_of(layout_dataset.out, trial)
        assert len(rows) == decoded_frame_count(video), trial


def test_crops_are_112_pixel_colour_jpegs_numbered_from_one_with_gaps(layout_dataset: SynthReport) -> None:
    root = layout_dataset.out
    folders = sorted((root / "cropped_aligned").iterdir())
    assert folders
    for folder in folders:
        frames = decoded_frame_count(video_of(root, folder.name))
        names = sorted(p.name for p in folder.iterdir())
        assert all(re.fullmatch(r"\d{5}\.jpg", name) for name in names), folder.name
        numbers = [int(name[:5]) for name in names]
        assert min(numbers) >= 1 and max(numbers) <= frames
        assert 0.5 * frames < len(numbers) < frames, f"{folder.name}: expected some, not all, frames missing"
        image = cv2.imread(str(folder / names[0]), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.shape == (112, 112, 3)
        assert (folder / names[0]).read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG magic


def test_a_labelled_trial_has_no_crops_so_preprocessing_must_detect_faces(layout_dataset: SynthReport) -> None:
    cropped = {p.name for p in (layout_dataset.out / "cropped_aligned").iterdir()}
    labelled = layout_dataset.train + layout_dataset.validate
    without = [t for t in labelled if t not in cropped]
    assert len(without) == 1
    assert all(t in cropped for t in layout_dataset.test), "test trials need their crops"


def test_left_and_right_trials_share_one_video(layout_dataset: SynthReport) -> None:
    root = layout_dataset.out
    lefts = [t for t in all_trials(layout_dataset) if t.endswith("_left")]
    assert len(lefts) == 1
    stem = lefts[0].removesuffix("_left")
    assert f"{stem}_right" in all_trials(layout_dataset)
    assert video_of(root, lefts[0]) == video_of(root, f"{stem}_right") == root / "videos" / f"{stem}.mp4"
    assert not list((root / "videos").glob("*_left*")) and not list((root / "videos").glob("*_right*"))
    left = label_file(root, layout_dataset, f"{stem}_left").read_text(encoding="utf-8")
    right = label_file(root, layout_dataset, f"{stem}_right").read_text(encoding="utf-8")
    assert left != right
    assert (root / "cropped_aligned" / f"{stem}_left").is_dir() and (
        root / "cropped_aligned" / f"{stem}_right"
    ).is_dir()


def test_containers_codecs_frame_rates_and_one_silent_video(layout_dataset: SynthReport) -> None:
    root = layout_dataset.out
    videos = sorted((root / "videos").iterdir())
    assert [p.name for p in videos] == sorted(layout_dataset.videos)
    silent, rates, suffixes = [], set(), set()
    for video in videos:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == ("h264" if video.suffix == ".mp4" else "mpeg4"), video.name
            assert stream.average_rate is not None
            rates.add(Fraction(stream.average_rate))
            assert (stream.codec_context.width, stream.codec_context.height) in {(192, 144), (288, 144)}
            if not container.streams.audio:
                silent.append(video.name)
            else:
                audio = container.streams.audio[0]
                assert audio.codec_context.name == ("aac" if video.suffix == ".mp4" else "pcm_s16le"), video.name
                assert audio.rate == 16000
        suffixes.add(video.suffix)
    assert suffixes == {".mp4", ".avi"}
    assert len(silent) == 1
    assert {Fraction(30), Fraction(25), Fraction(30000, 1001)} <= rates


def test_test_set_list_and_sample_submission_match_the_videos(layout_dataset: SynthReport) -> None:
    root = layout_dataset.out
    assert (root / TEST_LIST).read_text(encoding="utf-8").splitlines() == layout_dataset.test
    lines = (root / SAMPLE).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "image_location,valence,arousal"
    expected = []
    for trial in layout_dataset.test:
        frames = decoded_frame_count(video_of(root, trial))
        expected += [f"{trial}/{frame:05d}.jpg" for frame in range(1, frames + 1)]
        truth = (root / "synth_ground_truth" / f"{trial}.txt").read_text(encoding="utf-8").splitlines()
        assert len(truth) == frames + 1
    assert [line.split(",")[0] for line in lines[1:]] == expected
    assert all(len(line.split(",")) == 3 for line in lines[1:])


def test_trial_names_look_like_the_release(layout_dataset: SynthReport) -> None:
    for trial in all_trials(layout_dataset):
        assert re.fullmatch(r"synth-\d{2}-\d{2}-\d+x\d+(_left|_right)?", trial), trial
        assert check_trial_name(trial) == trial


def test_description_records_arguments_and_every_trial(
    layout_dataset: SynthReport, layout_args: dict[str, object]
) -> None:
    description = json.loads((layout_dataset.out / "synth.json").read_text(encoding="utf-8"))
    assert description["format"] == "tagf-synth"
    assert description["arguments"] == layout_args
    assert description["partitions"] == {
        "train": layout_dataset.train,
        "validate": layout_dataset.validate,
        "test": layout_dataset.test,
    }
    by_name = {t["name"]: t for t in description["trials"]}
    assert sorted(by_name) == sorted(all_trials(layout_dataset))
    for name, entry in by_name.items():
        assert entry["frames"] == decoded_frame_count(video_of(layout_dataset.out, name))
        crops = layout_dataset.out / "cropped_aligned" / name
        assert entry["crops_written"] == (len(list(crops.iterdir())) if crops.is_dir() else 0)


def test_report_counts_the_files_written(layout_dataset: SynthReport) -> None:
    files = [p for p in layout_dataset.out.rglob("*") if p.is_file()]
    assert layout_dataset.files == len(files)
    assert not [p for p in layout_dataset.out.parent.iterdir() if p.name.startswith(".")], "staging left behind"


@pytest.mark.parametrize("name", [TEST_LIST, SAMPLE, "synth.json"])
def test_top_level_files_end_with_a_newline(layout_dataset: SynthReport, name: str) -> None:
    assert (layout_dataset.out / name).read_text(encoding="utf-8").endswith("\n")
