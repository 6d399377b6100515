from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagf_core.data.folds import NUM_FOLDS, FoldSplit, split_fold, split_training_chunks
from tagf_core.data.layout import TrialRecord
from tagf_core.errors import TagfError

RecordFactory = Callable[..., TrialRecord]

# ref §2.4: train c0 = 0–70, c1 = 71–141, c2 = 142–212, c3 = 213–283, c4 = 284–355
REFERENCE_CHUNKS = [range(0, 71), range(71, 142), range(142, 213), range(213, 284), range(284, 356)]


def reference_records(record_factory: RecordFactory, train_names: list[str] | None = None) -> list[TrialRecord]:
    """The real Aff-Wild2 counts: 356 train, 76 validate, 162 extra (ref §2.1)."""
    train_names = train_names or [f"t{i:03d}" for i in range(356)]
    return (
        [record_factory(name, "train") for name in train_names]
        + [record_factory(f"v{i:02d}", "validate") for i in range(76)]
        + [record_factory(f"x{i:03d}", "extra") for i in range(162)]
    )


def test_chunk_sizes_match_the_reference_on_356_trials() -> None:
    chunks = split_training_chunks([f"t{i:03d}" for i in range(356)])
    assert [len(c) for c in chunks] == [71, 71, 71, 71, 72]


def test_remainder_goes_to_the_last_chunks() -> None:
    assert [len(c) for c in split_training_chunks([f"t{i:02d}" for i in range(13)])] == [2, 2, 3, 3, 3]


@pytest.mark.parametrize("fold", range(NUM_FOLDS))
def test_fold_matches_the_reference_rotation_table(record_factory: RecordFactory, fold: int) -> None:
    # the train list is shuffled on purpose: folds must not depend on manifest order
    names = [f"t{i:03d}" for i in range(356)]
    split = split_fold(reference_records(record_factory, names[::-1]), fold)
    chunks = [[names[i] for i in r] for r in REFERENCE_CHUNKS] + [[f"v{i:02d}" for i in range(76)]]
    # oracle: the reference's np.roll, applied to chunk indices (a regular array) instead of ragged chunks
    rolled = [chunks[i] for i in np.roll(np.arange(6), fold)]
    assert split == FoldSplit(
        fold=fold,
        train=tuple(name for chunk in rolled[:5] for name in chunk),
        validate=tuple(rolled[5]),
        extra=tuple(f"x{i:03d}" for i in range(162)),
    )
    # the table of ref §2.4, spelled out
    expected_validate = chunks[5] if fold == 0 else chunks[5 - fold]
    assert list(split.validate) == expected_validate


def test_fold_0_is_the_official_split(record_factory: RecordFactory) -> None:
    split = split_fold(reference_records(record_factory), 0)
    assert sorted(split.train) == [f"t{i:03d}" for i in range(356)]
    assert sorted(split.validate) == [f"v{i:02d}" for i in range(76)]


def test_pair_on_a_chunk_boundary_moves_the_boundary_by_one() -> None:
    # trials 70 and 71 form a pair; the nominal boundary at 71 would split it
    names = [f"t{i:03d}" for i in range(356) if i not in (70, 71)] + ["t070p_left", "t070p_right"]
    chunks = split_training_chunks(names)
    assert [len(c) for c in chunks] == [72, 70, 71, 71, 72]
    assert chunks[0][-2:] == ["t070p_left", "t070p_right"]


def test_pair_is_kept_together_when_another_name_sorts_between() -> None:
    # sorted order is a_left, a_m, a_right; the pair is regrouped so that no boundary can split it
    chunks = split_training_chunks(["a_left", "a_m", "a_right", "b", "c", "d"])
    assert chunks == [["a_left", "a_right"], ["a_m"], ["b"], ["c"], ["d"]]


def _pair_stem(name: str) -> str | None:
    for suffix in ("_left", "_right"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return None


trial_names = st.sets(
    st.builds(
        lambda stem, suffix: stem + suffix,
        st.text("ab_lr", min_size=1, max_size=4),
        st.sampled_from(["", "_left", "_right"]),
    ),
    max_size=60,
)


@given(trial_names)
def test_left_right_pairs_never_straddle_chunks(names: set[str]) -> None:
    chunks = split_training_chunks(sorted(names))
    assert sorted(n for c in chunks for n in c) == sorted(names)
    chunk_of = {name: i for i, chunk in enumerate(chunks) for name in chunk}
    for name in names:
        stem = _pair_stem(name)
        if stem and name.endswith("_left") and stem + "_right" in names:
            assert chunk_of[name] == chunk_of[stem + "_right"], (name, chunks)
    groups = {_pair_stem(name) or name + "/single" for name in names}  # a pair counts once
    if len(groups) >= 5:
        assert all(chunks), chunks
    if len(names) >= 10:
        # each boundary moves by at most one trial, so each chunk is within one of its nominal size
        size, remainder = divmod(len(names), 5)
        nominal = [size + (i >= 5 - remainder) for i in range(5)]
        assert all(abs(len(c) - n) <= 1 for c, n in zip(chunks, nominal, strict=True)), chunks


def test_every_labelled_trial_is_validated_exactly_once(record_factory: RecordFactory) -> None:
    train = [f"s{i:02d}_left" for i in range(9)] + [f"s{i:02d}_right" for i in range(9)] + ["solo1", "solo2", "solo3"]
    records = (
        [record_factory(name, "train") for name in train]
        + [record_factory(name, "validate") for name in ("v1", "v2", "v3")]
        + [record_factory(name, "extra") for name in ("x1", "x2")]
    )
    labelled = set(train) | {"v1", "v2", "v3"}
    validated: list[str] = []
    for fold in range(NUM_FOLDS):
        split = split_fold(records, fold)
        assert set(split.train) | set(split.validate) == labelled
        assert not set(split.train) & set(split.validate)
        assert len(split.train) + len(split.validate) == len(labelled)
        assert split.extra == ("x1", "x2")
        if fold >= 1:
            assert not {"v1", "v2", "v3"} & set(split.validate)
            # the pair fix holds in every fold: both faces of a video sit on the same side
            for i in range(9):
                assert (f"s{i:02d}_left" in split.train) == (f"s{i:02d}_right" in split.train)
        validated += split.validate
    assert sorted(validated) == sorted(labelled)


@pytest.mark.parametrize("fold", [6, -1, 7])
def test_folds_outside_0_to_5_are_refused(fold: int) -> None:
    # an empty manifest would fail later; the fold check must come first
    with pytest.raises(TagfError, match=r"folds are 0–5.*fold 6 silently repeats fold 0") as e:
        split_fold([], fold)
    assert f"fold {fold} does not exist" in str(e.value)
    assert "\n" not in str(e.value)


def test_no_training_trials_is_an_error_naming_fold_and_counts(record_factory: RecordFactory) -> None:
    records = [record_factory("v1", "validate"), record_factory("x1", "extra")]
    with pytest.raises(TagfError, match=r"fold 0 has 0 training and 1 validation trials.*0 train and 1 validate"):
        split_fold(records, 0)


def test_fold_with_an_empty_chunk_is_an_error(record_factory: RecordFactory) -> None:
    # 3 training trials fill chunks c0–c2; fold 1 would validate on the empty c4
    records = [record_factory(f"t{i}", "train") for i in range(3)] + [record_factory("v1", "validate")]
    assert split_fold(records, 5).validate == ("t0",)
    with pytest.raises(TagfError, match=r"fold 1 has 4 training and 0 validation trials"):
        split_fold(records, 1)


def test_debug_keeps_one_trial_per_chunk() -> None:
    def record(name: str, partition: str) -> TrialRecord:
        return TrialRecord(name, f"{name}.mp4", partition, 10, 30.0, 0, "cropped_aligned", True, "0" * 64)  # type: ignore[arg-type]

    records = [record(f"t{i:02d}", "train") for i in range(12)]
    records += [record("v1", "validate"), record("v2", "validate"), record("x1", "extra"), record("x2", "extra")]
    split = split_fold(records, 1, debug=True)
    assert len(split.train) == 5 and len(split.validate) == 1 and split.extra == ("x1",)
    assert split.validate == ("t09",)  # 12 trials → chunks of 2, 2, 2, 3, 3; fold 1 validates on c4 = t09–t11
