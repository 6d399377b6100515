"""Importing a reference-preprocessed dataset: arrays converted, layout checked, unsafe pickles refused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from preprocessing.reference_import import (
    REFERENCE_DEFAULT_FPS,
    import_reference_trial,
    load_pickle_restricted,
    read_reference_dataset,
    read_reference_trial,
)
from tagf_core.data.layout import TrialRecord, check_trial_arrays, read_trial_record
from tagf_core.errors import TagfError


def make_trial(root: Path, name: str, length: int, labelled: bool, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    folder = root / "compacted_48" / name
    folder.mkdir(parents=True)
    arrays: dict[str, np.ndarray] = {
        "video": rng.integers(0, 256, (length, 48, 48, 3), dtype=np.uint8),
        "logmel": rng.normal(-3, 2, (length, 96, 64)).astype(np.float16),
        "vggish": rng.normal(0, 1, (length, 128)),  # present in the reference output, ignored by us
    }
    arrays["video"][1] = 0  # a black 'no face' frame
    if labelled:
        arrays["VA_continuous_label"] = rng.uniform(-1, 1, (length, 2))  # float64, as the reference writes
    for key, array in arrays.items():
        np.save(folder / f"{key}.npy", array)
    return arrays


@pytest.fixture
def reference(tmp_path: Path) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    root = tmp_path / "reference"
    trials = {
        "10-60-1280x720_right": make_trial(root, "10-60-1280x720_right", 7, labelled=True, seed=1),
        "video2": make_trial(root, "video2", 5, labelled=True, seed=2),
        "video3": make_trial(root, "video3", 4, labelled=False, seed=3),
        "video4": make_trial(root, "video4", 3, labelled=False, seed=4),
    }
    info = {
        "trial": list(trials),
        "subject_no": [1, 1, 1, 1],
        "trial_no": [1, 1, 1, 1],
        "length": [np.int64(7), 5, 4, 3],  # numpy integers as the reference may store them
        "partition": ["train", "validate", "extra", "test"],
        "pseudo_partition": np.array(["a", "b", "c", "d"]),
        "data_folder": "compacted_48",
    }
    with (root / "dataset_info.pkl").open("wb") as handle:
        pickle.dump(info, handle, protocol=4)
    return root, trials


def test_dataset_info_is_listed_in_order_with_test_mapped_to_extra(
    reference: tuple[Path, dict[str, dict[str, np.ndarray]]], caplog: pytest.LogCaptureFixture
) -> None:
    root, _ = reference
    dataset = read_reference_dataset(root)
    assert [t.trial for t in dataset.trials] == ["10-60-1280x720_right", "video2", "video3", "video4"]
    assert [t.length for t in dataset.trials] == [7, 5, 4, 3]
    assert [t.partition for t in dataset.trials] == ["train", "validate", "extra", "extra"]
    assert dataset.trials[3].reference_partition == "test"
    assert "imported as 'extra'" in caplog.text


def test_import_converts_arrays_and_writes_our_layout(
    reference: tuple[Path, dict[str, dict[str, np.ndarray]]], tmp_path: Path
) -> None:
    root, source = reference
    dataset = read_reference_dataset(root)
    out = tmp_path / "processed"
    records: list[TrialRecord] = []
    for trial in dataset.trials:
        fps = 25.0 if trial.trial == "video2" else None
        outcome = import_reference_trial(dataset, trial, out, fps=fps)
        assert outcome.status == "done", outcome.message
        assert outcome.record is not None
        records.append(outcome.record)

    labelled = records[0]
    assert labelled.length == 7 and labelled.partition == "train"
    assert labelled.fps == REFERENCE_DEFAULT_FPS == 30.0
    assert records[1].fps == 25.0
    assert labelled.frames_without_face == 1
    assert labelled.face_source == "cropped_aligned"
    assert labelled.has_audio
    trial_dir = out / "10-60-1280x720_right"
    np.testing.assert_array_equal(np.load(trial_dir / "video.npy"), source["10-60-1280x720_right"]["video"])
    logmel = np.load(trial_dir / "logmel.npy")
    assert logmel.dtype == np.float16
    np.testing.assert_array_equal(logmel, source["10-60-1280x720_right"]["logmel"])
    labels = np.load(trial_dir / "VA_continuous_label.npy")
    assert labels.dtype == np.float32
    np.testing.assert_array_equal(labels, source["10-60-1280x720_right"]["VA_continuous_label"].astype(np.float32))
    assert not (trial_dir / "vggish.npy").exists()
    frames = np.load(trial_dir / "frames.npy")
    assert frames.dtype == np.int32
    np.testing.assert_array_equal(frames, np.arange(7))  # the reference records no frame numbers
    assert read_trial_record(trial_dir) == labelled

    unlabelled = records[3]
    assert unlabelled.partition == "extra"
    assert not (out / "video4" / "VA_continuous_label.npy").exists()
    np.testing.assert_array_equal(np.load(out / "video4" / "frames.npy"), np.arange(3))
    for record in records:
        check_trial_arrays(out, record)  # the layout contract's own check: dtypes and shapes
    assert len({r.input_digest for r in records}) == 4


def test_wrong_shapes_and_dtypes_are_refused_naming_the_file(
    reference: tuple[Path, dict[str, dict[str, np.ndarray]]], tmp_path: Path
) -> None:
    root, _ = reference
    dataset = read_reference_dataset(root)
    trial = dataset.trials[1]  # video2, T = 5
    folder = root / "compacted_48" / "video2"

    np.save(folder / "video.npy", np.zeros((5, 48, 48, 3), dtype=np.float32))
    with pytest.raises(TagfError, match=r"video\.npy: holds float32 .* expected uint8 \(5, 48, 48, 3\)"):
        read_reference_trial(dataset, trial)

    (folder / "video.npy").unlink()
    np.save(folder / "video128.npy", np.zeros((5, 128, 128, 3), dtype=np.uint8))
    with pytest.raises(TagfError, match="video128.npy exists"):
        read_reference_trial(dataset, trial)

    np.save(folder / "video.npy", np.zeros((4, 48, 48, 3), dtype=np.uint8))  # one frame short of T
    with pytest.raises(TagfError, match=r"expected uint8 \(5, 48, 48, 3\)"):
        read_reference_trial(dataset, trial)

    np.save(folder / "video.npy", np.zeros((5, 48, 48, 3), dtype=np.uint8))
    np.save(folder / "VA_continuous_label.npy", np.full((5, 2), -5.0))
    with pytest.raises(TagfError, match=r"VA_continuous_label\.npy: holds values outside \[-1, 1\]"):
        read_reference_trial(dataset, trial)

    np.save(folder / "logmel.npy", np.zeros((5, 96, 32), dtype=np.float16))
    with pytest.raises(TagfError, match=r"logmel\.npy: holds float16 \(5, 96, 32\)"):
        read_reference_trial(dataset, trial)
    outcome = import_reference_trial(dataset, trial, tmp_path / "out")
    assert outcome.status == "failed"
    assert "logmel.npy: holds float16 (5, 96, 32)" in outcome.message
    assert not (tmp_path / "out" / "video2").exists()


def test_a_second_import_skips_trials_that_are_up_to_date(
    reference: tuple[Path, dict[str, dict[str, np.ndarray]]], tmp_path: Path
) -> None:
    root, _ = reference
    dataset = read_reference_dataset(root)
    out = tmp_path / "out"
    first = [import_reference_trial(dataset, t, out).status for t in dataset.trials]
    second = [import_reference_trial(dataset, t, out).status for t in dataset.trials]
    assert first == ["done"] * 4
    assert second == ["skipped"] * 4


def test_object_arrays_in_npy_files_are_not_unpickled(
    reference: tuple[Path, dict[str, dict[str, np.ndarray]]], tmp_path: Path
) -> None:
    root, _ = reference
    dataset = read_reference_dataset(root)
    np.save(root / "compacted_48" / "video3" / "logmel.npy", np.array([{"a": 1}] * 4, dtype=object))
    with pytest.raises(TagfError, match=r"logmel\.npy: not a readable \.npy array"):
        read_reference_trial(dataset, dataset.trials[2])


class _RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "dataset_info.pkl"
    path.write_bytes(pickle.dumps({"trial": [_RunsCommand(f"touch {marker}")], "length": [1], "partition": ["train"]}))
    with pytest.raises(TagfError, match=r"refusing to unpickle (posix|os|nt)\.system") as error:
        read_reference_dataset(tmp_path)
    assert str(error.value).startswith(str(path))
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(eval),  # a builtin function, not a container
        pickle.dumps(TagfError("x")),  # any class outside the allow-list
        b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'__subclasses__'\ntR.",  # protocol-0 gadget
    ],
)
def test_other_globals_are_refused(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    with pytest.raises(TagfError, match="refusing to unpickle"):
        load_pickle_restricted(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_and_containers_load_with_every_protocol(tmp_path: Path, protocol: int) -> None:
    value = {
        "array": np.arange(6, dtype=np.int32).reshape(2, 3),
        "scalar": np.float64(1.5),
        "set": {1, 2},
        "strings": np.array(["x", "yy"]),
        "dtype": np.dtype("float16"),
    }
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    loaded = load_pickle_restricted(path)
    assert isinstance(loaded, dict)
    np.testing.assert_array_equal(loaded["array"], value["array"])
    assert loaded["scalar"] == 1.5 and loaded["set"] == {1, 2} and loaded["dtype"] == np.float16
    np.testing.assert_array_equal(loaded["strings"], value["strings"])


@pytest.mark.parametrize(
    ("info", "fragment"),
    [
        (["not", "a", "dict"], "expected a dict, found list"),
        ({"trial": ["a"], "length": [1]}, "lacks the key(s) partition"),
        ({"trial": ["a", "b"], "length": [1], "partition": ["train"]}, "differ in length"),
        ({"trial": ["a", "a"], "length": [1, 1], "partition": ["train", "train"]}, "listed twice"),
        ({"trial": ["a"], "length": [0], "partition": ["train"]}, "expected a positive integer"),
        ({"trial": ["a"], "length": [1], "partition": ["holdout"]}, "partition 'holdout'"),
        ({"trial": ["a"], "length": [1], "partition": ["train"], "data_folder": "../up"}, "not a plain folder"),
    ],
)
def test_bad_dataset_info_is_refused(tmp_path: Path, info: object, fragment: str) -> None:
    (tmp_path / "dataset_info.pkl").write_bytes(pickle.dumps(info))
    with pytest.raises(TagfError) as error:
        read_reference_dataset(tmp_path)
    assert fragment in str(error.value)


def test_missing_dataset_info_mentions_parts(tmp_path: Path) -> None:
    (tmp_path / "dataset_info_0.pkl").write_bytes(pickle.dumps({}))
    with pytest.raises(TagfError, match=r"no dataset_info\.pkl.*dataset_info_0\.pkl: merge the parts"):
        read_reference_dataset(tmp_path)


def test_all_parts_pickle_is_accepted_as_dataset_info(tmp_path: Path) -> None:
    info = {"trial": ["a"], "length": [2], "partition": ["extra"]}
    (tmp_path / "dataset_info_-1.pkl").write_bytes(pickle.dumps(info))
    dataset = read_reference_dataset(tmp_path)
    assert dataset.trials[0].trial == "a"
    assert dataset.trial_dir(dataset.trials[0]) == tmp_path / "compacted_48" / "a"
    assert dataset.data_folder == "compacted_48"


def test_an_unsafe_trial_name_fails_that_trial_alone(
    reference: tuple[Path, dict[str, dict[str, np.ndarray]]], tmp_path: Path
) -> None:
    root, _ = reference
    info = load_pickle_restricted(root / "dataset_info.pkl")
    assert isinstance(info, dict)
    info["trial"] = ["../evil", *info["trial"][1:]]
    (root / "dataset_info.pkl").write_bytes(pickle.dumps(info))
    dataset = read_reference_dataset(root)
    outcomes = [import_reference_trial(dataset, t, tmp_path / "out") for t in dataset.trials]
    assert outcomes[0].status == "failed" and "is not allowed" in outcomes[0].message
    assert [o.status for o in outcomes[1:]] == ["done"] * (len(outcomes) - 1)
    assert not (tmp_path / "evil").exists()
