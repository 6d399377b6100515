"""The on-disk layout of a preprocessed dataset: the one contract between preprocessing and training.

``preprocessing`` writes it, ``tagf_core.data`` reads and checks it. Torch-free on purpose. Longer than the
other modules by design: every on-disk format of a dataset, with its reader and checks, is written down here
and nowhere else.

    OUT/
      manifest.json                  {"format": "tagf-processed", "version": 2, "trials": [TrialRecord, ...]}
      <trial>/
        video.npy                    uint8   T×48×48×3  RGB faces, black where no face was found
        logmel.npy                   float16 T×96×64    one VGGish log-mel patch per kept video frame
        frames.npy                   int32   T          0-based video frame number of each row, strictly increasing
        VA_continuous_label.npy      float32 T×2        (valence, arousal); labelled trials only
        trial.json                   this trial's TrialRecord (lets a re-run skip finished trials)

T is the number of kept frames: the annotated rows (``-5`` rows dropped) for ``train``/``validate``
trials, every video frame for ``extra`` (unlabelled test) trials. Row i of every array is the same
video frame, ``frames[i]``: ``frames`` is ``arange(T)`` for an unlabelled trial and skips the ``-5`` rows
of a labelled one. Row i is annotation line ``frames[i] + 2`` (line 1 is the header) and the frame named
``{frames[i] + 1:05d}.jpg`` in cropped_aligned and in submissions. Trials imported from the reference's
output get ``arange(T)``: the reference stores no frame numbers.

The frozen-backbone embedding cache (``--backbone frozen``) lives beside the trials, or under
``data.embeddings_root`` when that is set (``embeddings_root``); training writes it (``tagf_core.training.embed``),
the embedding Dataset reads it:

    OUT/embeddings/<first 16 hex of the embedding digest>/     (or <embeddings_root>/<first 16 hex ...>/)
      padding.npz          video (512,) and audio (128,) float32: the embeddings of one padded frame
      <trial>/
        video.npy          float32 T×512   IR-50 on the eval centre crop of each face
        audio.npy          float32 T×128   VGGish on each log-mel patch
      cache.json           {"format", "version", "digest", "tagf_version", "crop_size", "trials": {trial: {...}}};
                           written last, so a cache without it was interrupted

The digest covers the backbone weights, every trial's ``input_digest``, the crop size and the cache version,
so changed weights or a re-preprocessed dataset get a new folder and a stale cache is never read.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from tagf_core.atomic import atomic_write
from tagf_core.errors import TagfError

Partition = Literal["train", "validate", "extra"]
PARTITIONS: tuple[Partition, ...] = get_args(Partition)

MANIFEST_NAME = "manifest.json"
TRIAL_RECORD_NAME = "trial.json"
MANIFEST_FORMAT = "tagf-processed"
MANIFEST_VERSION = 2  # 2: frames.npy added

VIDEO_FILE = "video.npy"
LOGMEL_FILE = "logmel.npy"
LABEL_FILE = "VA_continuous_label.npy"
FRAMES_FILE = "frames.npy"

FACE_SIZE = 48  # ref §2.2: the training code expects 48×48 faces (not the config's 128)
LOGMEL_FRAMES = 96  # ref §1.3: one 0.96 s patch of 10 ms rows
LOGMEL_BANDS = 64
Emotion = Literal["valence", "arousal"]
EMOTIONS: tuple[Emotion, ...] = ("valence", "arousal")  # column order of VA_continuous_label.npy
PAIR_SUFFIXES = ("_left", "_right")  # ref §2.1: two faces of one video, trials <video>_left / <video>_right

# (file, dtype, shape after the leading T) for every array a trial may hold
ARRAY_SPECS: dict[str, tuple[str, tuple[int, ...]]] = {
    VIDEO_FILE: ("uint8", (FACE_SIZE, FACE_SIZE, 3)),
    LOGMEL_FILE: ("float16", (LOGMEL_FRAMES, LOGMEL_BANDS)),
    LABEL_FILE: ("float32", (len(EMOTIONS),)),
    FRAMES_FILE: ("int32", ()),
}


EMBEDDINGS_DIR = "embeddings"
CACHE_NAME = "cache.json"
CACHE_FORMAT = "tagf-embeddings"
CACHE_VERSION = 1  # bump when what is cached changes (crop, normalisation, padding), so old folders are not reused
PADDING_FILE = "padding.npz"
VIDEO_EMBEDDING_DIM = 512  # IR-50's output (tagf_core.model.visual_backbone.EMBEDDING_DIM)
AUDIO_EMBEDDING_DIM = 128  # VGGish's output (tagf_core.model.audio_backbone.EMBEDDING_DIM)
EMBEDDING_FILES: dict[str, tuple[str, int]] = {
    "video": ("video.npy", VIDEO_EMBEDDING_DIM),
    "audio": ("audio.npy", AUDIO_EMBEDDING_DIM),
}
"""(file, width) of each cached per-trial array; both float32 T×width."""


def paired_video(trial: str) -> str | None:
    """``X`` for a trial ``X_left``/``X_right`` (two faces of one video, ref §2.1), None for any other name."""
    for suffix in PAIR_SUFFIXES:
        if trial.endswith(suffix) and len(trial) > len(suffix):
            return trial[: -len(suffix)]
    return None


def video_name_for(trial: str) -> str:
    """The name of the video a trial comes from: ``X`` for ``X_left``/``X_right``, the trial itself otherwise."""
    return paired_video(trial) or trial


_SAFE_TRIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_trial_name(name: str) -> str:
    """Return ``name`` if it is safe as a folder name under OUT; raise TagfError if it could escape it."""
    if not _SAFE_TRIAL.fullmatch(name) or name in {".", ".."} or ".." in name:
        raise TagfError(
            f"trial name {name!r} is not allowed: use letters, digits, '.', '_' or '-' "
            "(a name with '/', '..' or a leading dot could write outside the output folder)"
        )
    return name


@dataclass(frozen=True)
class TrialRecord:
    """What the manifest says about one preprocessed trial."""

    trial: str
    """Trial name, e.g. ``10-60-1280x720_right``: the folder under OUT."""
    video: str
    """File name of the source video (``X.mp4`` for trials ``X_left``/``X_right``), or "" if none was found."""
    partition: Partition
    length: int
    """T: the number of kept frames (rows of every array)."""
    fps: float
    """Frame rate read from the video container."""
    frames_without_face: int
    """Kept frames whose face is a black frame (no crop file, or no face detected)."""
    face_source: Literal["cropped_aligned", "haar_cascade"]
    has_audio: bool
    """False when the video had no audio track and silence was used."""
    input_digest: str
    """sha256 over the inputs and the preprocessing parameters; a re-run skips a trial whose digest matches."""

    @property
    def labelled(self) -> bool:
        return self.partition != "extra"

    def expected_files(self) -> tuple[str, ...]:
        files = (VIDEO_FILE, LOGMEL_FILE, FRAMES_FILE)
        return (*files, LABEL_FILE) if self.labelled else files

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object, source: str) -> TrialRecord:
        """Build a record from parsed JSON; raise TagfError naming ``source`` if it is malformed."""
        if not isinstance(data, dict):
            raise TagfError(f"{source}: a trial record must be a JSON object")
        names = {f.name for f in fields(cls)}
        missing = sorted(names - data.keys())
        if missing:
            raise TagfError(f"{source}: trial record lacks {', '.join(missing)}")
        record = cls(**{k: data[k] for k in names})
        problems = []
        if not isinstance(record.trial, str):
            problems.append("trial must be a string")
        if record.partition not in PARTITIONS:
            problems.append(f"partition {record.partition!r} is not one of {', '.join(PARTITIONS)}")
        if not isinstance(record.length, int) or record.length < 1:
            problems.append(f"length {record.length!r} must be a positive integer")
        if not isinstance(record.fps, (int, float)) or not record.fps > 0:
            problems.append(f"fps {record.fps!r} must be positive")
        if problems:
            raise TagfError(f"{source}: trial {data.get('trial')!r}: {'; '.join(problems)}")
        check_trial_name(record.trial)
        return record


def write_trial_record(trial_dir: Path, record: TrialRecord) -> None:
    atomic_write(trial_dir / TRIAL_RECORD_NAME, json.dumps(record.to_json(), indent=2) + "\n")


def read_trial_record(trial_dir: Path) -> TrialRecord:
    path = trial_dir / TRIAL_RECORD_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TagfError(f"{path}: cannot read trial record ({e})") from e
    return TrialRecord.from_json(data, str(path))


def write_manifest(root: Path, records: list[TrialRecord]) -> Path:
    """Write ``root/manifest.json`` atomically, trials sorted by name."""
    payload = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "trials": [r.to_json() for r in sorted(records, key=lambda r: r.trial)],
    }
    path = Path(root) / MANIFEST_NAME
    atomic_write(path, json.dumps(payload, indent=2) + "\n")
    return path


def read_manifest(root: Path) -> list[TrialRecord]:
    """Read and check ``root/manifest.json``; raise TagfError naming the file on any problem."""
    path = Path(root) / MANIFEST_NAME
    data = _read_document(path, MANIFEST_FORMAT, "manifest", missing=_no_manifest_advice(Path(root)))
    if data.get("version") != MANIFEST_VERSION:
        raise TagfError(
            f"{path}: manifest version {data.get('version')!r} is not supported "
            f"(this tagf reads version {MANIFEST_VERSION}); re-run `tagf preprocess`"
        )
    trials = data.get("trials")
    if not isinstance(trials, list):
        raise TagfError(f"{path}: 'trials' must be a list")
    records = [TrialRecord.from_json(t, str(path)) for t in trials]
    seen: set[str] = set()
    for r in records:
        if r.trial in seen:
            raise TagfError(f"{path}: trial {r.trial!r} is listed twice")
        seen.add(r.trial)
    return records


def _no_manifest_advice(root: Path) -> str:
    """What to run when ``root`` has no manifest. A folder with files in it is not a processed folder (or one
    whose preprocessing never finished): most often the raw release itself, given where its output belongs."""
    if root.is_dir() and any(root.iterdir()):
        return (
            "no manifest: not a processed folder (for a raw release, run "
            f"`tagf preprocess --data-root {root} --out <processed folder>` and use that folder)"
        )
    return f"no manifest; run `tagf preprocess --data-root <raw release> --out {root}` first"


class _Writes:
    """A file seen by numpy as a plain stream: numpy then writes through ``write`` rather than ``ndarray.tofile``,
    whose short write on a full disk is an OSError without errno ("N requested and M written")."""

    def __init__(self, handle: Any) -> None:
        self.write = handle.write


def save_array(path: Path, array: Any) -> None:
    """``np.save`` without pickles, whose write errors carry their errno: a full disk says "No space left on
    device" and names the file."""
    import numpy as np

    with open(path, "wb") as handle:
        try:
            np.lib.format.write_array(_Writes(handle), np.asanyarray(array), allow_pickle=False)  # type: ignore[arg-type]
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from e


def array_problem(path: Path, dtype: str, shape: tuple[int, ...], expected: str = "expected") -> str | None:
    """What is wrong with the .npy at ``path`` (naming it), or None if it holds ``dtype`` × ``shape``.

    The one array check of every on-disk format here: reads the header only (memory-mapped), so it is cheap.
    """
    import numpy as np  # numpy is light, but keep the module import-free for the CLI

    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, EOFError, ValueError) as e:
        return f"{path}: missing or unreadable ({e})"
    if array.dtype != np.dtype(dtype) or tuple(array.shape) != shape:
        return f"{path}: holds {array.dtype} {tuple(array.shape)}, {expected} {dtype} {shape}"
    return None


def _read_document(path: Path, format_name: str, what: str, *, missing: str, advice: str = "") -> dict[str, Any]:
    """A JSON object whose ``format`` is ``format_name`` (the versioned files of this layout); TagfError naming
    ``path`` when it is missing (``missing`` says what to do), unreadable or of another format."""
    if not path.is_file():
        raise TagfError(f"{path}: {missing}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TagfError(f"{path}: not a readable JSON {what} ({e}){advice}") from e
    if not isinstance(data, dict) or data.get("format") != format_name:
        raise TagfError(f"{path}: not a tagf {what} (expected format {format_name!r})")
    return data


def check_trial_arrays(root: Path, record: TrialRecord) -> None:
    """Check that a trial's arrays exist with the dtype and shape the manifest promises, and that its frame
    numbers are ≥ 0 and strictly increasing. Raises TagfError naming the file."""
    import numpy as np

    trial_dir = Path(root) / record.trial
    for name in record.expected_files():
        dtype, tail = ARRAY_SPECS[name]
        problem = array_problem(trial_dir / name, dtype, (record.length, *tail), "manifest expects")
        if problem is not None:
            raise TagfError(f"{problem}; re-run `tagf preprocess`")
    _check_frame_numbers(trial_dir / FRAMES_FILE, np.load(trial_dir / FRAMES_FILE, mmap_mode="r"))


def _check_frame_numbers(path: Path, frames: Any) -> None:
    """Raise TagfError naming ``path`` unless the int (T,) frame numbers are ≥ 0 and strictly increasing."""
    import numpy as np

    if frames.size and int(frames[0]) < 0:
        raise TagfError(f"{path}: frame number {int(frames[0])} at row 0 is negative; re-run `tagf preprocess`")
    steps = np.diff(frames)  # int32 (T-1,)
    if steps.size and not (steps > 0).all():
        row = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise TagfError(
            f"{path}: frame numbers must strictly increase, but row {row} holds {int(frames[row])} "
            f"after {int(frames[row - 1])}; re-run `tagf preprocess`"
        )


# ---- the frozen-backbone embedding cache (layout in the module docstring) ---------------------------------------


def embeddings_root(processed_root: Path, configured: Path | None = None) -> Path:
    """Where embedding caches are kept: ``data.embeddings_root`` when set (a processed folder may be read-only),
    else ``<processed_root>/embeddings``."""
    return Path(configured) if configured is not None else Path(processed_root) / EMBEDDINGS_DIR


def embedding_cache_folder(root: Path, digest: str) -> Path:
    """One cache in ``root`` (an ``embeddings_root``)."""
    return Path(root) / digest[:16]


def cached_trial_problem(cache_dir: Path, trial: str, length: int) -> str | None:
    """What is wrong with a cached trial's arrays (naming the file), or None if both have the expected shape."""
    for name, width in EMBEDDING_FILES.values():
        problem = array_problem(cache_dir / trial / name, "float32", (length, width))
        if problem is not None:
            return problem
    return None


def write_padding(cache_dir: Path, video: Any, audio: Any) -> None:
    """``padding.npz``: the embeddings (512,) and (128,) float32 of one padded frame."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, video=video, audio=audio)
    atomic_write(cache_dir / PADDING_FILE, buffer.getvalue())


def read_padding(cache_dir: Path) -> tuple[Any, Any]:
    """(video 512, audio 128) float32 from ``padding.npz``; TagfError naming the file if unusable."""
    import zipfile

    import numpy as np

    path = cache_dir / PADDING_FILE
    try:
        stored = np.load(path)
        if not isinstance(stored, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with stored:
            video, audio = np.asarray(stored["video"]), np.asarray(stored["audio"])
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise TagfError(f"{path}: missing or unreadable ({e}); rebuild the cache") from e
    for name, array in (("video", video), ("audio", audio)):
        width = EMBEDDING_FILES[name][1]
        if array.dtype != np.float32 or array.shape != (width,):
            raise TagfError(f"{path}: {name} is {array.dtype} {array.shape}, expected float32 ({width},)")
    return video, audio


def write_cache_manifest(
    cache_dir: Path, digest: str, records: list[TrialRecord], crop_size: int, tagf_version: str
) -> None:
    """``cache.json``, written last: the cache is complete."""
    payload = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "digest": digest,
        "tagf_version": tagf_version,
        "crop_size": crop_size,
        "trials": {r.trial: {"input_digest": r.input_digest, "length": r.length} for r in records},
    }
    atomic_write(cache_dir / CACHE_NAME, json.dumps(payload, indent=2) + "\n")


def read_cache_manifest(cache_dir: Path, crop_size: int) -> dict[str, Any]:
    """Read and check ``cache.json``; raise TagfError naming it if the cache is unfinished or foreign."""
    path = cache_dir / CACHE_NAME
    data = _read_document(
        path, CACHE_FORMAT, "cache manifest", missing="no cache manifest; the embedding cache was never finished, "
        "rebuild it", advice="; rebuild the cache",
    )  # fmt: skip
    if data.get("version") != CACHE_VERSION or data.get("crop_size") != crop_size:
        raise TagfError(
            f"{path}: cache version {data.get('version')!r}, crop {data.get('crop_size')!r} is not what this run "
            f"reads (version {CACHE_VERSION}, crop {crop_size}); rebuild the cache"
        )
    if not isinstance(data.get("trials"), dict) or not all(isinstance(e, dict) for e in data["trials"].values()):
        raise TagfError(f"{path}: 'trials' must map each trial name to an object")
    return data


def check_cached_trials(cache_dir: Path, cached: dict[str, Any], records: list[TrialRecord]) -> None:
    """Raise TagfError (naming ``cache.json`` or the array) unless every record is in the cache, embedded from the
    preprocessed data the record describes now, with arrays of the right shape."""
    cache_path = cache_dir / CACHE_NAME
    for record in records:
        entry = cached.get(record.trial)
        if entry is None:
            raise TagfError(
                f"{cache_path}: trial {record.trial!r} is not in this embedding cache; "
                "build it with every trial of the manifest"
            )
        if entry != {"input_digest": record.input_digest, "length": record.length}:
            raise TagfError(
                f"{cache_path}: trial {record.trial!r} was embedded from other preprocessed data than "
                "the manifest describes now; rebuild the cache"
            )
        problem = cached_trial_problem(cache_dir, record.trial, record.length)
        if problem is not None:
            raise TagfError(f"{problem}; rebuild the cache")


def cache_is_complete(cache_dir: Path, digest: str, records: list[TrialRecord], crop_size: int) -> bool:
    """True if ``cache.json`` is finished for this digest and every record's arrays and the padding are usable."""
    try:
        data = read_cache_manifest(cache_dir, crop_size)
        read_padding(cache_dir)
        check_cached_trials(cache_dir, data["trials"], records)
    except TagfError:
        return False
    return bool(data.get("digest") == digest)
