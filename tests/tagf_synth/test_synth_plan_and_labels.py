"""Pure parts of the generator: which trials a given N yields, and the label curves and file format."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tagf_synth.labels import annotation_text, unannotated_mask, va_curves
from tagf_synth.layout import crop_file_name
from tagf_synth.plan import frames_for, partition_sizes, plan_dataset


@pytest.mark.parametrize("trials", range(6, 41))
def test_from_six_trials_every_partition_gets_one(trials: int) -> None:
    sizes = partition_sizes(trials)
    assert sum(sizes.values()) == trials
    assert min(sizes.values()) >= 1
    assert sizes["train"] > sizes["validate"] >= sizes["test"]


@pytest.mark.parametrize(
    ("trials", "expected"),
    [
        (1, (1, 0, 0)),
        (2, (2, 0, 0)),
        (4, (4, 0, 0)),
        (5, (4, 1, 0)),
        (6, (4, 1, 1)),
        (7, (5, 1, 1)),
        (8, (5, 2, 1)),
        (10, (6, 2, 2)),
    ],
)
def test_partition_sizes_fill_train_first(trials: int, expected: tuple[int, int, int]) -> None:
    sizes = partition_sizes(trials)
    assert (sizes["train"], sizes["validate"], sizes["test"]) == expected


@pytest.mark.parametrize("trials", [1, 2, 3, 5, 6, 7, 8, 13, 20])
def test_plan_has_the_requested_trials_and_keeps_the_pair_together(trials: int) -> None:
    videos = plan_dataset(trials, 12.0)
    members = [trial for video in videos for trial in video.trials]
    assert len(members) == trials
    assert len({t.name for t in members}) == trials
    assert len({v.file_name for v in videos}) == len(videos)
    for video in videos:
        assert len({t.partition for t in video.trials}) == 1, "a pair must not straddle partitions"
        assert video.width % 2 == 0 and video.height % 2 == 0  # 4:2:0 video needs even sizes
    # Partitions in order: train, then validate, then test.
    order = {"train": 0, "validate": 1, "test": 2}
    ranks = [order[t.partition] for t in members]
    assert ranks == sorted(ranks)


@pytest.mark.parametrize("trials", [6, 8, 15])
def test_from_six_trials_every_special_case_is_present(trials: int) -> None:
    videos = plan_dataset(trials, 12.0)
    members = [t for v in videos for t in v.trials]
    assert any(len(v.trials) == 2 and {t.side for t in v.trials} == {"left", "right"} for v in videos)
    labelled_without_crops = [t for t in members if not t.has_crops and t.partition != "test"]
    assert len(labelled_without_crops) == 1
    assert all(t.has_crops for t in members if t.partition == "test")
    assert any(v.container == "avi" for v in videos)
    assert sum(not v.has_audio for v in videos) == 1
    assert {v.fps for v in videos} >= {Fraction(30), Fraction(25), Fraction(30000, 1001)}


def test_frame_counts_use_exact_frame_rates() -> None:
    assert frames_for(12.0, Fraction(30000, 1001)) == 360
    assert frames_for(2.5, Fraction(25)) == 63  # 62.5 rounds half up
    assert frames_for(2.0, Fraction(30)) == 60


def test_label_curves_are_smooth_and_within_range() -> None:
    labels = va_curves(np.random.default_rng(0), 300, Fraction(30))
    assert labels.shape == (300, 2)
    assert labels.min() >= -1.0 and labels.max() <= 1.0
    assert np.abs(np.diff(labels, axis=0)).max() < 0.08  # no jumps: at most 2π·0.45 Hz·0.8 per second
    assert labels.std(axis=0).min() > 0.02  # but they do move


def test_unannotated_mask_has_three_blocks() -> None:
    for seed in range(20):
        mask = unannotated_mask(np.random.default_rng(seed), 50)
        starts = np.flatnonzero(np.diff(np.r_[0, mask.astype(int)]) == 1)
        assert mask[0] and mask[-1]
        assert len(starts) == 3, f"seed {seed}: blocks start at {starts}"


def test_annotation_text_format() -> None:
    labels = np.array([[0.1234, -0.00001], [-1.0, 1.0], [0.5, 0.5]])
    text = annotation_text(labels, np.array([False, False, True]))
    assert text == "valence,arousal\n0.123,0.000\n-1.000,1.000\n-5,-5\n"


def test_crop_files_are_numbered_from_one() -> None:
    assert crop_file_name(0) == "00001.jpg"
    assert crop_file_name(12344) == "12345.jpg"
