"""The layout contract's checks: frame numbers, the files every trial holds, the manifest version."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from tagf_core.data.layout import FRAMES_FILE, check_trial_arrays, read_manifest
from tagf_core.errors import TagfError

WriteProcessed = Callable[[Sequence[tuple[str, str, int]]], Path]


@pytest.fixture
def root(write_processed: WriteProcessed) -> Path:
    return write_processed([("alpha", "train", 6), ("gamma", "extra", 4)])


def test_every_trial_holds_frame_numbers(root: Path) -> None:
    records = {r.trial: r for r in read_manifest(root)}
    assert FRAMES_FILE in records["alpha"].expected_files()
    assert FRAMES_FILE in records["gamma"].expected_files()
    for record in records.values():
        check_trial_arrays(root, record)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([2, 3, 3, 9, 10, 11], r"frame numbers must strictly increase, but row 2 holds 3 after 3"),
        ([2, 3, 4, 1, 10, 11], r"frame numbers must strictly increase, but row 3 holds 1 after 4"),
        ([-1, 3, 4, 9, 10, 11], r"frame number -1 at row 0 is negative"),
    ],
)
def test_bad_frame_numbers_are_refused_naming_the_file(root: Path, frames: list[int], message: str) -> None:
    np.save(root / "alpha" / FRAMES_FILE, np.array(frames, dtype=np.int32))
    record = next(r for r in read_manifest(root) if r.trial == "alpha")
    with pytest.raises(TagfError, match=rf"alpha/frames\.npy: {message}"):
        check_trial_arrays(root, record)


def test_frame_numbers_of_the_wrong_dtype_or_length_are_refused(root: Path) -> None:
    record = next(r for r in read_manifest(root) if r.trial == "gamma")
    np.save(root / "gamma" / FRAMES_FILE, np.arange(4, dtype=np.int64))
    with pytest.raises(TagfError, match=r"gamma/frames\.npy: holds int64 \(4,\), manifest expects int32 \(4,\)"):
        check_trial_arrays(root, record)
    np.save(root / "gamma" / FRAMES_FILE, np.arange(3, dtype=np.int32))
    with pytest.raises(TagfError, match=r"gamma/frames\.npy: holds int32 \(3,\)"):
        check_trial_arrays(root, record)
    (root / "gamma" / FRAMES_FILE).unlink()
    with pytest.raises(TagfError, match=r"gamma/frames\.npy: missing or unreadable"):
        check_trial_arrays(root, record)


def test_a_version_1_manifest_asks_for_a_new_preprocess(root: Path) -> None:
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "version": 1}))
    with pytest.raises(TagfError, match=r"manifest version 1 is not supported .* re-run `tagf preprocess`"):
        read_manifest(root)


def test_a_raw_release_given_as_processed_folder_is_told_to_preprocess_it_with_data_root(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "cropped_aligned").mkdir(parents=True)
    with pytest.raises(TagfError) as refused:
        read_manifest(raw)
    assert str(refused.value) == (
        f"{raw / 'manifest.json'}: no manifest: not a processed folder (for a raw release, run "
        f"`tagf preprocess --data-root {raw} --out <processed folder>` and use that folder)"
    )


def test_a_missing_processed_folder_is_told_to_preprocess_a_raw_release_into_it(tmp_path: Path) -> None:
    with pytest.raises(TagfError) as refused:
        read_manifest(tmp_path / "processed")
    assert str(refused.value) == (
        f"{tmp_path / 'processed' / 'manifest.json'}: no manifest; "
        f"run `tagf preprocess --data-root <raw release> --out {tmp_path / 'processed'}` first"
    )
