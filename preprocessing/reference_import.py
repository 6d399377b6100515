"""Import a dataset preprocessed by the reference code into our layout, without recomputing anything.

The reference writes (ref §2.2, §2.3)::

    PATH/dataset_info.pkl                      {"trial": [...], "length": [...], "partition": [...],
                                                "data_folder": "compacted_48", ...}
    PATH/compacted_48/<trial>/video.npy        uint8   T×48×48×3
    PATH/compacted_48/<trial>/logmel.npy       float16 T×96×64
    PATH/compacted_48/<trial>/VA_continuous_label.npy   float64 T×2 (labelled trials)
    (+ vggish.npy, bert.npy, which TAGF does not use and we ignore)

The pickle is read with a restricted unpickler that can rebuild only numpy arrays, numpy scalars and
builtin containers: a pickle is a program, and a downloaded one must not run anything.

What the reference does not record, and what we put instead:
    * fps: the pickle keeps no frame rate. Pass the real one (``media.probe_video`` on the raw video)
      or get ``REFERENCE_DEFAULT_FPS`` = 30.0, the Aff-Wild2 norm. Nothing downstream computes with it:
      the arrays are already per frame, and the manifest's fps is informational.
    * partition ``test`` (empty in the reference, ref §2.1) becomes ``extra``: our layout has no ``test``.
    * the source video file name is unknown, so the record says "".
    * video frame numbers: the reference keeps only the annotated rows of a labelled trial and does not
      say which video frames they were, so ``frames.npy`` is ``arange(T)``. That is right for unlabelled
      trials (every frame is kept) but not for a labelled trial with ``-5`` rows: frame numbers derived
      from it (validation predictions ``frame,label,prediction``) are row numbers, not video frames.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from preprocessing.publish import TrialOutcome, failure, publish_trial, up_to_date_record
from tagf_core.data.layout import (
    FACE_SIZE,
    FRAMES_FILE,
    LABEL_FILE,
    LOGMEL_BANDS,
    LOGMEL_FILE,
    LOGMEL_FRAMES,
    VIDEO_FILE,
    Partition,
    TrialRecord,
    check_trial_name,
)
from tagf_core.errors import TagfError

log = logging.getLogger(__name__)

DATASET_INFO_NAMES = ("dataset_info.pkl", "dataset_info_-1.pkl")  # ref §2.2 step 8: "-1" is the all-parts file
DEFAULT_DATA_FOLDER = "compacted_48"
REFERENCE_DEFAULT_FPS = 30.0
"""fps recorded for imported trials when the caller does not know the real one (the pickle has none)."""

_PARTITION_MAP: dict[str, Partition] = {
    "train": "train",
    "validate": "validate",
    "extra": "extra",
    "test": "extra",  # our layout has no 'test'; the reference's is empty anyway (ref §2.1)
}
_SILENCE_F16 = np.float16(np.log(0.01))  # a logmel patch of digital silence, as the reference stores it
_IMPORT_VERSION = b"tagf-reference-import/2"  # 2: frames.npy added

# ---------------------------------------------------------------------------------------------------------
# restricted unpickling


def _numpy_pickle_callables() -> dict[str, Any]:
    # take the functions from numpy's own reduce output, so the right objects are found on numpy 1.x and
    # 2.x alike and the deprecated numpy.core shim is never imported
    array = np.zeros(1)
    return {
        "_reconstruct": array.__reduce_ex__(4)[0],
        "_frombuffer": array.__reduce_ex__(5)[0],
        "scalar": np.float64(0).__reduce__()[0],
    }


def _allowed_globals() -> dict[tuple[str, str], Any]:
    numpy_callables = _numpy_pickle_callables()
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = numpy_callables["_reconstruct"]
        allowed[(f"{package}.multiarray", "scalar")] = numpy_callables["scalar"]
        allowed[(f"{package}.numeric", "_frombuffer")] = numpy_callables["_frombuffer"]  # protocol 5
    containers = {
        "list": list,
        "dict": dict,
        "tuple": tuple,
        "set": set,
        "frozenset": frozenset,
        "bytearray": bytearray,
    }
    for module in ("builtins", "__builtin__"):  # __builtin__: protocol ≤ 2 pickles name builtins that way
        for name, value in containers.items():
            allowed[(module, name)] = value
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    # protocol ≤ 2 pickles store bytes (e.g. array data) as _codecs.encode(str, "latin1"): pure, no side effect
    allowed[("_codecs", "encode")] = __import__("_codecs").encode
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays, numpy scalars and builtin containers; refuses every other global."""

    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise TagfError(f"refusing to unpickle {module}.{name}") from None


def load_pickle_restricted(path: Path) -> object:
    """Unpickle ``path`` allowing only numpy arrays/scalars/dtypes and builtin containers.

    Raises:
        TagfError: the file is unreadable, not a pickle, or names any other global
            ("<path>: refusing to unpickle os.system").
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return _RestrictedUnpickler(handle).load()
    except TagfError as e:
        raise TagfError(f"{path}: {e}") from None
    except OSError as e:
        raise TagfError(f"{path}: cannot read ({e.strerror or e})") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise TagfError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e


# ---------------------------------------------------------------------------------------------------------
# dataset_info.pkl


@dataclass(frozen=True)
class ReferenceTrial:
    """One trial listed in the reference's dataset_info.pkl."""

    trial: str
    length: int
    """T as the reference recorded it."""
    partition: Partition
    """Our partition (the reference's ``test`` becomes ``extra``)."""
    reference_partition: str


@dataclass(frozen=True)
class ReferenceDataset:
    """A reference-preprocessed dataset: where its arrays live and which trials it lists, in its order."""

    root: Path
    data_folder: str
    trials: tuple[ReferenceTrial, ...]

    def trial_dir(self, trial: ReferenceTrial) -> Path:
        return self.root / self.data_folder / trial.trial


def read_reference_dataset(root: Path) -> ReferenceDataset:
    """Read and check ``root/dataset_info.pkl`` (or ``dataset_info_-1.pkl``) of a reference-preprocessed dataset.

    Raises:
        TagfError: no dataset_info pickle, an unsafe pickle, or keys/values that do not describe trials.
    """
    root = Path(root)
    path = next((root / name for name in DATASET_INFO_NAMES if (root / name).is_file()), None)
    if path is None:
        parts = sorted(p.name for p in root.glob("dataset_info_*.pkl"))
        hint = f" (found {', '.join(parts)}: merge the parts first, ref §2.2)" if parts else ""
        raise TagfError(f"{root}: no dataset_info.pkl; is this a dataset preprocessed by the reference code?{hint}")
    info = load_pickle_restricted(path)
    if not isinstance(info, dict):
        raise TagfError(f"{path}: expected a dict, found {type(info).__name__}")
    missing = [key for key in ("trial", "length", "partition") if key not in info]
    if missing:
        raise TagfError(f"{path}: lacks the key(s) {', '.join(missing)}")
    names, lengths, partitions = (_as_list(path, info, key) for key in ("trial", "length", "partition"))
    if not len(names) == len(lengths) == len(partitions):
        raise TagfError(
            f"{path}: 'trial', 'length' and 'partition' differ in length "
            f"({len(names)}, {len(lengths)}, {len(partitions)})"
        )
    data_folder = info.get("data_folder", DEFAULT_DATA_FOLDER)
    if (
        not isinstance(data_folder, str)
        or not data_folder
        or "/" in data_folder
        or "\\" in data_folder
        or data_folder in {".", ".."}
    ):
        raise TagfError(f"{path}: data_folder {data_folder!r} is not a plain folder name")

    trials: list[ReferenceTrial] = []
    seen: set[str] = set()
    for name, length, partition in zip(names, lengths, partitions, strict=True):
        if not isinstance(name, str):
            raise TagfError(f"{path}: trial name {name!r} is not a string")
        # an unsafe name fails that trial alone, in import_reference_trial, before any path is built from it
        if name in seen:
            raise TagfError(f"{path}: trial {name!r} is listed twice")
        seen.add(name)
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise TagfError(f"{path}: trial {name!r} has length {length!r}, expected a positive integer")
        partition = str(partition)
        if partition not in _PARTITION_MAP:
            raise TagfError(
                f"{path}: trial {name!r} has partition {partition!r}, expected one of {', '.join(_PARTITION_MAP)}"
            )
        trials.append(ReferenceTrial(name, int(length), _PARTITION_MAP[partition], partition))

    renamed = sum(t.reference_partition == "test" for t in trials)
    if renamed:
        log.warning("%s: %d trial(s) of partition 'test' are imported as 'extra' (unlabelled)", path, renamed)
    return ReferenceDataset(root=root, data_folder=data_folder, trials=tuple(trials))


def _as_list(path: Path, info: dict[Any, Any], key: str) -> list[Any]:
    value = info[key]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise TagfError(f"{path}: '{key}' is a {type(value).__name__}, expected a list")
    return list(value)


# ---------------------------------------------------------------------------------------------------------
# per-trial arrays


@dataclass(frozen=True)
class ReferenceArrays:
    """One trial's arrays, checked and converted to our dtypes."""

    video: npt.NDArray[np.uint8]
    """uint8 T×48×48×3 RGB faces."""
    logmel: npt.NDArray[np.float16]
    """float16 T×96×64."""
    labels: npt.NDArray[np.float32] | None
    """float32 T×2 (valence, arousal); None for unlabelled trials."""
    digest: str
    """sha256 over the source arrays (dtype, shape and bytes) as read."""

    @property
    def frames_without_face(self) -> int:
        """Frames whose face is entirely black (the reference's 'no crop' frame)."""
        return int((~self.video.reshape(self.video.shape[0], -1).any(axis=1)).sum())

    @property
    def has_audio(self) -> bool:
        """False when every log-mel value is that of digital silence (the reference had no audio)."""
        return not bool(np.all(self.logmel == _SILENCE_F16))


def _load_npy(path: Path) -> np.ndarray[Any, Any]:
    try:
        # allow_pickle=False: a .npy holding Python objects is refused, never unpickled
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise TagfError(f"{path}: missing") from None
    except (OSError, ValueError) as e:
        raise TagfError(f"{path}: not a readable .npy array ({e})") from e


def _hash_array(digest: Any, name: str, array: np.ndarray[Any, Any]) -> None:
    digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).data.cast("B"))  # no copy for contiguous arrays


def read_reference_trial(dataset: ReferenceDataset, trial: ReferenceTrial) -> ReferenceArrays:
    """Read one trial's arrays from a reference dataset, check them and convert them to our layout's dtypes.

    video must be uint8 T×48×48×3 (a 128 px ``video128.npy`` is refused, ref §2.2); logmel any float
    T×96×64, stored as float16; labels (train/validate only) any float T×2 in [−1, 1], stored as float32.
    T must equal the length in dataset_info.pkl. vggish.npy and bert.npy are ignored.

    Raises:
        TagfError: naming the file, when one is missing, unreadable, or of the wrong dtype or shape.
    """
    folder = dataset.trial_dir(trial)
    if not folder.is_dir():
        raise TagfError(f"{folder}: trial folder listed in dataset_info.pkl is missing")
    length = trial.length
    digest = hashlib.sha256(_IMPORT_VERSION)

    video_path = folder / VIDEO_FILE
    if not video_path.exists() and (folder / "video128.npy").exists():
        raise TagfError(
            f"{video_path}: missing, but video128.npy exists: the reference wrote 128 px faces (its stored "
            "config, ref §2.2); TAGF trains on 48 px, so re-run its preprocessing with video_size=48"
        )
    video = _load_npy(video_path)
    expected_video = (length, FACE_SIZE, FACE_SIZE, 3)
    if video.dtype != np.uint8 or video.shape != expected_video:
        raise TagfError(f"{video_path}: holds {video.dtype} {video.shape}, expected uint8 {expected_video}")
    _hash_array(digest, VIDEO_FILE, video)

    logmel_path = folder / LOGMEL_FILE
    logmel = _load_npy(logmel_path)
    expected_logmel = (length, LOGMEL_FRAMES, LOGMEL_BANDS)
    if not np.issubdtype(logmel.dtype, np.floating) or logmel.shape != expected_logmel:
        raise TagfError(f"{logmel_path}: holds {logmel.dtype} {logmel.shape}, expected float16 {expected_logmel}")
    _hash_array(digest, LOGMEL_FILE, logmel)
    logmel16 = np.array(logmel, dtype=np.float16)  # a copy even when already float16: detach from the map
    if not np.isfinite(logmel16).all():
        raise TagfError(f"{logmel_path}: holds NaN or values outside the float16 range")

    labels32 = None
    if trial.partition != "extra":
        label_path = folder / LABEL_FILE
        labels = _load_npy(label_path)
        if not np.issubdtype(labels.dtype, np.floating) or labels.shape != (length, 2):
            raise TagfError(f"{label_path}: holds {labels.dtype} {labels.shape}, expected float {(length, 2)}")
        _hash_array(digest, LABEL_FILE, labels)
        labels32 = np.array(labels, dtype=np.float32)
        if not (np.isfinite(labels32).all() and np.abs(labels32).max() <= 1.0):
            raise TagfError(
                f"{label_path}: holds values outside [-1, 1] (or NaN); the reference keeps only annotated rows"
            )

    return ReferenceArrays(
        video=np.array(video, dtype=np.uint8),  # copy out of the memory map
        logmel=logmel16,
        labels=labels32,
        digest=digest.hexdigest(),
    )


def reference_record(trial: ReferenceTrial, arrays: ReferenceArrays, fps: float | None = None) -> TrialRecord:
    """The manifest record of an imported trial. ``fps``: the trial's real frame rate if known, else
    ``REFERENCE_DEFAULT_FPS`` (the reference records none).

    Raises:
        TagfError: when ``fps`` is not positive.
    """
    if fps is not None and not fps > 0:
        raise TagfError(f"fps {fps!r} for trial {trial.trial!r} must be positive")
    record_fps = float(fps) if fps is not None else REFERENCE_DEFAULT_FPS
    digest = hashlib.sha256(f"{arrays.digest}:{trial.partition}:{record_fps!r}".encode()).hexdigest()
    return TrialRecord(
        trial=check_trial_name(trial.trial),
        video="",  # the pickle does not say which file the trial came from
        partition=trial.partition,
        length=trial.length,
        fps=record_fps,
        frames_without_face=arrays.frames_without_face,
        face_source="cropped_aligned",  # the reference always used the organisers' crops (use_mtcnn=0, ref §2.2)
        has_audio=arrays.has_audio,
        input_digest=digest,
    )


def layout_arrays(arrays: ReferenceArrays) -> dict[str, np.ndarray[Any, Any]]:
    """The arrays under their file names in our layout; ``frames.npy`` is ``arange(T)`` (see the module docstring)."""
    files: dict[str, np.ndarray[Any, Any]] = {
        VIDEO_FILE: arrays.video,
        LOGMEL_FILE: arrays.logmel,
        FRAMES_FILE: np.arange(len(arrays.video), dtype=np.int32),  # the reference records no frame numbers
    }
    if arrays.labels is not None:
        files[LABEL_FILE] = arrays.labels
    return files


def import_reference_trial(
    dataset: ReferenceDataset, trial: ReferenceTrial, out_root: Path, *, fps: float | None = None
) -> TrialOutcome:
    """Read, check and convert one reference trial into ``out_root/<trial>/``, unless it is up to date.

    Never raises for bad input: a problem is a failed outcome naming the file. Peak memory is one
    trial's arrays.
    """
    try:
        check_trial_name(trial.trial)
        arrays = read_reference_trial(dataset, trial)
        record = reference_record(trial, arrays, fps)
        existing = up_to_date_record(Path(out_root), record.trial, record.input_digest)
        if existing is not None:
            return TrialOutcome(trial.trial, "skipped", existing)
        publish_trial(Path(out_root), record, layout_arrays(arrays))
        return TrialOutcome(trial.trial, "done", record)
    except (TagfError, OSError) as e:
        return failure(trial.trial, e)
