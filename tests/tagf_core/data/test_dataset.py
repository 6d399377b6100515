from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tagf_core.data.dataset import WindowDataset
from tagf_core.data.layout import VIDEO_FILE
from tagf_core.data.windows import Window
from tagf_core.errors import TagfError
from tagf_core.training.setup import RunData

WriteProcessed = Callable[[Sequence[tuple[str, str, int]]], Path]
L, HOP = 8, 5  # tiny windows; the reference's 300/200 only changes the numbers
TRIALS = [("alpha", "train", 20), ("beta", "validate", 5), ("gamma", "extra", 12)]


@pytest.fixture
def root(write_processed: WriteProcessed) -> Path:
    return write_processed(TRIALS)


def dataset(root: Path, trials: Sequence[str] = ("alpha", "beta", "gamma"), **kwargs: object) -> WindowDataset:
    options: dict[str, object] = {
        "emotion": "valence", "train": False, "window_len": L, "hop_len": HOP, "crop_size": 40, **kwargs,
    }  # fmt: skip
    records = RunData.read(root).records_of(trials)
    return WindowDataset(root, records, **options)  # type: ignore[arg-type]


def centre_pixel(frame_index: np.ndarray) -> np.ndarray:
    """Expected normalised value of output pixel (0, 0) under the eval crop (offset 4, see face_pixels)."""
    return ((frame_index + 3 * 4 + 5 * 4) % 256) / 255 * 2 - 1


def assert_same_sample(a: Mapping[str, object], b: Mapping[str, object]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
        else:
            assert a[key] == b[key], key


def test_windows_and_sample_shapes(root: Path) -> None:
    ds = dataset(root)
    # alpha T=20: 0, 5, 10 and the tail 12; beta T=5 < L: one padded window; gamma T=12: 0 and tail 4
    assert ds.windows == (
        Window("alpha", 0, 8),
        Window("alpha", 5, 8),
        Window("alpha", 10, 8),
        Window("alpha", 12, 8),
        Window("beta", 0, 5),
        Window("gamma", 0, 8),
        Window("gamma", 4, 8),
    )
    sample = ds[2]
    assert sample["video"].shape == (L, 3, 40, 40) and sample["video"].dtype == torch.float32
    assert sample["logmel"].shape == (L, 96, 64) and sample["logmel"].dtype == torch.float32
    assert sample["label"].shape == (L, 1) and sample["label"].dtype == torch.float32
    assert sample["mask"].shape == (L,) and sample["mask"].dtype == torch.bool
    assert sample["frames"].shape == (L,) and sample["frames"].dtype == torch.int64
    assert (sample["trial"], sample["start"], sample["length"]) == ("alpha", 10, 8)
    frames = np.arange(10, 18)
    np.testing.assert_array_equal(sample["logmel"][:, 0, 0].numpy(), frames)
    np.testing.assert_allclose(sample["video"][:, 0, 0, 0].numpy(), centre_pixel(frames), atol=1e-6)
    assert sample["mask"].all()
    # rows 10–17 of alpha are video frames row + 2 + 5 (conftest: kept frames jump by 6 after row T//2 = 10)
    assert sample["frames"].tolist() == list(range(17, 25))
    assert dataset(root)[0]["frames"].tolist() == list(range(2, 10))


@pytest.mark.parametrize(("emotion", "sign"), [("valence", 1), ("arousal", -1)])
def test_label_column_follows_the_emotion(root: Path, emotion: str, sign: int) -> None:
    sample = dataset(root, emotion=emotion)[1]  # alpha frames 5–12; conftest labels are (t/100, −t/100)
    np.testing.assert_allclose(sample["label"][:, 0].numpy(), sign * np.arange(5, 13) / 100, rtol=1e-6)


def test_short_trial_is_padded_and_masked(root: Path) -> None:
    sample = dataset(root, ["beta"], emotion="arousal")[0]
    assert sample["length"] == 5
    assert sample["mask"].tolist() == [True] * 5 + [False] * 3
    np.testing.assert_allclose(sample["label"][:5, 0].numpy(), -np.arange(5) / 100, rtol=1e-6)
    assert (sample["label"][5:] == 0).all()
    assert (sample["logmel"][5:] == 0).all()
    assert (sample["video"][5:] == -1).all()  # black before normalisation, as in ref §2.5
    np.testing.assert_array_equal(sample["logmel"][:5, 0, 0].numpy(), np.arange(5))
    assert sample["frames"].tolist() == [2, 3, 9, 10, 11, -1, -1, -1]  # the jump at row 5 // 2 = 2; −1 pads


def test_extra_trials_have_zero_labels(root: Path) -> None:
    sample = dataset(root, ["gamma"])[1]
    assert (sample["trial"], sample["start"], sample["length"]) == ("gamma", 4, 8)
    assert (sample["label"] == 0).all()
    np.testing.assert_array_equal(sample["logmel"][:, 0, 0].numpy(), np.arange(4, 12))
    assert sample["frames"].tolist() == list(range(4, 12))  # an unlabelled trial keeps every frame


def test_arrays_are_memory_mapped_and_not_pickled(root: Path) -> None:
    ds = dataset(root)
    arrays = ds.trial_arrays("alpha")
    assert isinstance(arrays["video"], np.memmap)
    assert isinstance(arrays["logmel"], np.memmap)
    assert isinstance(arrays["label"], np.memmap)
    assert isinstance(arrays["frames"], np.memmap)
    assert "label" not in ds.trial_arrays("gamma")
    ds[0]
    payload = pickle.dumps(ds)
    assert len(payload) < 20_000  # the maps hold ~140 kB of faces; pickling a memmap would copy them
    assert_same_sample(pickle.loads(payload)[3], ds[3])


def test_few_open_trials_still_serve_every_window(root: Path) -> None:
    wide, narrow = dataset(root), dataset(root, max_open_trials=1)
    for index in [0, 5, 4, 1, 6, 0]:  # alternate trials so maps are closed and re-opened
        assert_same_sample(narrow[index], wide[index])


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through Linux /proc")
def test_open_memory_maps_are_bounded(root: Path) -> None:
    # every memory map holds a file descriptor; 594 trials × 4 maps could pass the open-file limit
    ds = dataset(root, max_open_trials=1)
    before = open_files()
    for index in range(len(ds)):
        ds[index]
    assert open_files() - before <= 4  # the four maps of the one trial kept open


def test_bad_array_shape_names_the_file(root: Path) -> None:
    np.save(root / "alpha" / VIDEO_FILE, np.zeros((20, 40, 40, 3), dtype=np.uint8))
    with pytest.raises(TagfError, match=r"alpha/video\.npy: holds uint8 \(20, 40, 40, 3\), manifest expects"):
        dataset(root)


def test_missing_label_file_names_the_file(root: Path) -> None:
    (root / "beta" / "VA_continuous_label.npy").unlink()
    with pytest.raises(TagfError, match=r"beta/VA_continuous_label\.npy: missing"):
        dataset(root, ["beta"])


def test_unknown_trial_and_emotion_are_refused(root: Path) -> None:
    with pytest.raises(TagfError, match=r"manifest\.json: trial 'delta' is not in the manifest"):
        dataset(root, ["alpha", "delta"])
    with pytest.raises(TagfError, match="emotion 'joy'"):
        dataset(root, emotion="joy")


def batches(ds: WindowDataset, num_workers: int) -> list[dict[str, object]]:
    return list(DataLoader(ds, batch_size=3, num_workers=num_workers))


def test_dataloader_with_two_workers(root: Path) -> None:
    ds = dataset(root, train=True, seed=7)
    in_process, workers = batches(ds, 0), batches(ds, 2)
    batch = workers[0]
    assert batch["video"].shape == (3, L, 3, 40, 40)  # type: ignore[attr-defined]
    assert batch["trial"] == ["alpha", "alpha", "alpha"]
    served = [(t, int(s)) for b in workers for t, s in zip(b["trial"], b["start"], strict=True)]  # type: ignore[call-overload]
    assert served == [(w.trial, w.start) for w in ds.windows]
    # a seeded dataset gives the same crops however many workers load it
    for a, b in zip(in_process, workers, strict=True):
        assert_same_sample(a, b)


def test_seeded_crops_change_with_the_epoch_only(root: Path) -> None:
    ds = dataset(root, train=True, seed=7)
    first = [ds[i]["video"] for i in range(len(ds))]
    assert all(torch.equal(a, ds[i]["video"]) for i, a in enumerate(first))
    ds.set_epoch(1)
    assert any(not torch.equal(a, ds[i]["video"]) for i, a in enumerate(first))
    # the eval crop ignores seed and epoch
    assert torch.equal(dataset(root, train=False)[0]["video"], dataset(root, train=False, seed=3)[0]["video"])


def test_run_data_splits_the_manifest_it_read_once(write_processed: WriteProcessed) -> None:
    root = write_processed([(f"t{i}", "train", 9) for i in range(6)] + [("v0", "validate", 4), ("x0", "extra", 3)])
    data = RunData.read(root)
    split = data.split(1)
    assert split.validate == ("t4", "t5")  # 6 trials → chunks 1/1/1/1/2, fold 1 validates on c4
    assert set(split.train) == {"v0", "t0", "t1", "t2", "t3"} and split.extra == ("x0",)
    assert [r.trial for r in data.records_of(split.validate)] == ["t4", "t5"]
    with pytest.raises(TagfError, match="fold 6 silently repeats fold 0"):
        data.split(6)
