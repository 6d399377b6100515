"""Frozen-backbone embeddings: per-frame IR-50 and VGGish outputs computed once, cached beside the preprocessed
data, and served as windows. This is what the ``--backbone frozen`` training mode reads, so an epoch costs seconds.

    OUT/embeddings/<first 16 hex of embedding_digest>/
      padding.npz          video (512,) and audio (128,) float32: the embeddings of one padded frame
      <trial>/
        video.npy          float32 T×512   IR-50 on the eval centre crop of each face
        audio.npy          float32 T×128   VGGish on each log-mel patch
      cache.json           {"format", "version", "digest", "tagf_version", "crop_size", "trials": {trial: {...}}};
                           written last, so a cache without it was interrupted

The folder name comes from the backbone weights, every trial's ``input_digest``, the crop size and the cache
format version, so changed weights or a re-preprocessed dataset get a new folder and a stale cache is never read.
Pass every record of the manifest: the cache is then shared by all folds, emotions and runs on that dataset.

Both backbones run in eval mode on the eval centre crop, so frozen mode trains on what the eval model computes:
no crop/flip augmentation and no batch statistics in the backbones' BatchNorm layers, unlike a reference
training step with frozen backbones (which keeps ``model.train()`` and the random crop, ref §2.6).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from tagf_core.atomic import atomic_write, default_mode
from tagf_core.data.dataset import Emotion, TrialWindows
from tagf_core.data.layout import (
    FACE_SIZE,
    LOGMEL_BANDS,
    LOGMEL_FILE,
    LOGMEL_FRAMES,
    VIDEO_FILE,
    TrialRecord,
    check_trial_arrays,
    check_trial_name,
)
from tagf_core.data.transforms import CROP_SIZE, transform_video
from tagf_core.errors import TagfError
from tagf_core.model.audio_backbone import EMBEDDING_DIM as AUDIO_DIM
from tagf_core.model.tagf import TAGFModel
from tagf_core.model.visual_backbone import EMBEDDING_DIM as VIDEO_DIM

logger = logging.getLogger(__name__)

EMBEDDINGS_DIR = "embeddings"
CACHE_NAME = "cache.json"
CACHE_FORMAT = "tagf-embeddings"
CACHE_VERSION = 1  # bump when what is cached changes (crop, normalisation, padding), so old folders are not reused
PADDING_FILE = "padding.npz"
VIDEO_EMBEDDINGS_FILE = "video.npy"
AUDIO_EMBEDDINGS_FILE = "audio.npy"
# (file, width) of each per-trial array; both float32 T×width
_EMBEDDING_FILES = {"video": (VIDEO_EMBEDDINGS_FILE, VIDEO_DIM), "audio": (AUDIO_EMBEDDINGS_FILE, AUDIO_DIM)}


def embedding_digest(model: TAGFModel, records: Sequence[TrialRecord]) -> str:
    """sha256 (hex) over what the cached embeddings depend on.

    That is: every tensor of both backbones' state dicts (name, dtype, shape and bytes), each record's trial
    name and ``input_digest`` in trial order, the crop size and ``CACHE_VERSION``. The layers after the
    backbones do not enter, so training them leaves the digest unchanged.
    """
    digest = hashlib.sha256()
    digest.update(f"{CACHE_FORMAT} v{CACHE_VERSION} crop {CROP_SIZE}\n".encode())
    for prefix, backbone in (("visual_backbone", model.visual_backbone), ("audio_backbone", model.audio_backbone)):
        for name, tensor in backbone.state_dict().items():
            flat = tensor.detach().to("cpu").contiguous().reshape(-1)
            digest.update(f"{prefix}.{name} {flat.dtype} {tuple(tensor.shape)}\n".encode())
            # raw bytes through a uint8 view: works for every dtype numpy lacks (bfloat16) and copies nothing
            digest.update(memoryview(flat.view(torch.uint8).numpy()))
    for record in sorted(records, key=lambda r: r.trial):
        digest.update(f"trial {record.trial} {record.input_digest}\n".encode())
    return digest.hexdigest()


def build_embedding_cache(
    processed_root: Path,
    model: TAGFModel,
    records: Sequence[TrialRecord],
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    on_trial: Callable[[str], None] | None = None,
) -> Path:
    """Embed every frame of ``records`` once and return the cache folder (layout in the module docstring).

    A trial already in the folder with arrays of the right shape is kept as is; a missing or unreadable one is
    (re)computed, so an interrupted build resumes where it stopped. Each trial is processed ``batch_size``
    frames at a time, read from and written to memory maps, so memory stays bounded by one chunk even for a
    36 000-frame trial.

    Args:
        processed_root: the preprocessed dataset (``manifest.json`` and one folder per trial).
        model: its backbones must already be on ``device``; they run in eval mode, the model's mode is restored.
        records: the trials to embed; pass the whole manifest so one folder serves every fold.
        device: where the inputs go; the embeddings come back to host memory.
        on_trial: called with each trial's name once its embeddings are written (not for trials reused).

    Raises:
        TagfError: a duplicate trial, or a trial's preprocessed arrays are missing or mis-shaped (naming the file).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size} must be at least 1")
    processed_root = Path(processed_root)
    ordered = sorted(records, key=lambda r: r.trial)
    duplicates = sorted(name for name, count in Counter(r.trial for r in ordered).items() if count > 1)
    if duplicates:
        raise TagfError(f"trial {duplicates[0]!r} is given twice to build_embedding_cache")
    for record in ordered:
        check_trial_name(record.trial)  # it becomes a folder name under the cache

    digest = embedding_digest(model, ordered)
    cache_dir = processed_root / EMBEDDINGS_DIR / digest[:16]
    if _is_complete(cache_dir, digest, ordered):
        logger.info("reusing the embedding cache %s (%d trials)", cache_dir, len(ordered))
        return cache_dir

    todo = [r for r in ordered if _trial_problem(cache_dir, r.trial, r.length) is not None]
    for record in todo:
        check_trial_arrays(processed_root, record)  # fail now, not after hours of embedding the trials before it
    cache_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    logger.info("embedding %d of %d trials into %s", len(todo), len(ordered), cache_dir)
    with torch.no_grad():
        try:
            _read_padding(cache_dir)
        except TagfError:
            _write_padding(cache_dir, model, device)
        for record in todo:
            _embed_trial(processed_root, cache_dir, record, model, batch_size, device)
            if on_trial is not None:
                on_trial(record.trial)
    _write_cache_manifest(cache_dir, digest, ordered)
    return cache_dir


class EmbeddingWindowSample(TypedDict):
    """One window of cached embeddings; the same fields as ``WindowSample`` with the images replaced."""

    video_embeddings: Tensor
    """L×512 float32; padded frames hold the embedding of a black (−1) face."""
    audio_embeddings: Tensor
    """L×128 float32; padded frames hold the embedding of an all-zero log-mel patch."""
    label: Tensor
    """L×1 float32, the chosen emotion's column; 0 on padded frames and for unlabelled (extra) trials."""
    mask: Tensor
    """L bool, True on real frames."""
    frames: Tensor
    """L int64, the 0-based video frame number of each row (``frames.npy``); −1 on padded frames."""
    trial: str
    start: int
    length: int
    """Real frames in the window: L, or T for a trial shorter than L."""


class EmbeddingWindowDataset(TrialWindows, Dataset[EmbeddingWindowSample]):
    """Every window of ``trials``, as cached embeddings: the windows and labels of ``WindowDataset``.

    Args:
        cache_dir: a folder returned by ``build_embedding_cache``.
        processed_root: the preprocessed dataset the cache was built from (labels and window lengths).
        trials: trial names to serve; windows follow this order, each trial's in start order.
        emotion: which label column to return.
        max_open_trials: trials whose memory maps are kept open per process (each map holds a file descriptor).

    Raises:
        TagfError: unknown emotion or trial, bad window sizes, a cache that is unfinished, was built from other
            preprocessed data, or lacks a trial, or an array that is missing or has the wrong shape (naming the file).

    The arrays are memory-mapped and opened lazily in each process, so the Dataset pickles small and works
    with DataLoader workers. Padded frames get the padding embeddings, not zeros: the reference zero-pads
    the images before the backbones (ref §2.5), so that is what the backbones saw there.
    """

    def __init__(
        self,
        cache_dir: Path,
        processed_root: Path,
        trials: Sequence[str],
        *,
        emotion: Emotion,
        window_len: int = 300,
        hop_len: int = 200,
        max_open_trials: int = 64,
    ) -> None:
        super().__init__(
            processed_root, trials, emotion=emotion, window_len=window_len, hop_len=hop_len,
            max_open_trials=max_open_trials,
        )  # fmt: skip
        self.cache_dir = Path(cache_dir)
        # check at the boundary: a stale or broken cache fails here, not hours into a fold
        cached = _read_cache_manifest(self.cache_dir)["trials"]
        cache_path = self.cache_dir / CACHE_NAME
        for record in self.records.values():
            entry = cached.get(record.trial)
            if entry is None:
                raise TagfError(
                    f"{cache_path}: trial {record.trial!r} is not in this embedding cache; "
                    "build it with every trial of the manifest"
                )
            if entry.get("input_digest") != record.input_digest or entry.get("length") != record.length:
                raise TagfError(
                    f"{cache_path}: trial {record.trial!r} was embedded from other preprocessed data than "
                    f"{self.root} holds now; rebuild the cache"
                )
            problem = _trial_problem(self.cache_dir, record.trial, record.length)
            if problem is not None:
                raise TagfError(f"{problem}; rebuild the cache")
        self.padding_video, self.padding_audio = _read_padding(self.cache_dir)  # 512, 128 float32

    def trial_files(self, trial: str) -> dict[str, Path]:
        """``video`` T×512 and ``audio`` T×128 float32 from the cache; ``frames`` and ``label`` as preprocessed."""
        cached = {key: self.cache_dir / trial / name for key, (name, _) in _EMBEDDING_FILES.items()}
        return {**cached, **super().trial_files(trial)}

    def __getitem__(self, index: int) -> EmbeddingWindowSample:
        window = self.windows[index]
        arrays = self.trial_arrays(window.trial)
        rows = slice(window.start, window.end)
        n, size = window.length, self.window_len
        video = np.empty((size, VIDEO_DIM), dtype=np.float32)
        video[:n] = arrays["video"][rows]
        video[n:] = self.padding_video  # ref §2.5: the reference pads before the backbones
        audio = np.empty((size, AUDIO_DIM), dtype=np.float32)
        audio[:n] = arrays["audio"][rows]
        audio[n:] = self.padding_audio
        label, mask, frame_numbers = self.window_rows(window, arrays)
        return EmbeddingWindowSample(
            video_embeddings=torch.from_numpy(video),
            audio_embeddings=torch.from_numpy(audio),
            label=label,
            mask=mask,
            frames=frame_numbers,
            trial=window.trial,
            start=window.start,
            length=n,
        )


# ---- embedding ------------------------------------------------------------------------------------------


def _embed_faces(model: TAGFModel, faces: np.ndarray, device: torch.device, batch_size: int) -> np.ndarray:
    """faces n×48×48×3 uint8 → n×512 float32: the eval centre crop, normalised as ``WindowDataset`` does."""
    crops = transform_video(np.asarray(faces), train=False)  # n×3×40×40 in [−1, 1]
    return model.embed_faces(crops.to(device), batch_size).float().cpu().numpy()


def _embed_logmel(model: TAGFModel, patches: np.ndarray, device: torch.device, batch_size: int) -> np.ndarray:
    """patches n×96×64 (float16 on disk) → n×128 float32; float32 first, as ``WindowDataset`` reads them."""
    logmel = torch.from_numpy(np.asarray(patches, dtype=np.float32))
    return model.embed_logmel(logmel.to(device), batch_size).float().cpu().numpy()


def _embed_trial(
    processed_root: Path,
    cache_dir: Path,
    record: TrialRecord,
    model: TAGFModel,
    batch_size: int,
    device: torch.device,
) -> None:
    """Write ``cache_dir/<trial>/`` through a hidden staging folder renamed into place when complete."""
    source = processed_root / record.trial
    faces = np.load(source / VIDEO_FILE, mmap_mode="r")  # T×48×48×3 uint8
    logmel = np.load(source / LOGMEL_FILE, mmap_mode="r")  # T×96×64 float16
    staging = Path(tempfile.mkdtemp(prefix=f".{record.trial}.", suffix=".partial", dir=cache_dir))
    try:
        outputs = {
            key: np.lib.format.open_memmap(staging / name, mode="w+", dtype=np.float32, shape=(record.length, width))
            for key, (name, width) in _EMBEDDING_FILES.items()
        }
        for start in range(0, record.length, batch_size):
            chunk = slice(start, min(start + batch_size, record.length))
            outputs["video"][chunk] = _embed_faces(model, faces[chunk], device, batch_size)
            outputs["audio"][chunk] = _embed_logmel(model, logmel[chunk], device, batch_size)
        for array in outputs.values():
            array.flush()  # on disk before the rename makes the trial count as done
        del outputs
        os.chmod(staging, default_mode(folder=True))  # mkdtemp makes it private; the dataset may be shared
        _move_into_place(staging, cache_dir / record.trial, record.length)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _move_into_place(staging: Path, target: Path, length: int) -> None:
    """Rename the finished ``staging`` folder to ``target``, replacing a broken ``target`` left by an earlier run.

    A complete ``target`` is kept: another process (a run on another machine) built the same trial meanwhile,
    from the same digest, and may be reading it already.
    """
    if target.exists() and _trial_problem(target.parent, target.name, length) is None:
        shutil.rmtree(staging, ignore_errors=True)
        return
    if target.exists():
        # rename cannot replace a non-empty folder: move the broken one aside onto an empty placeholder first
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".stale", dir=target.parent))
        os.replace(target, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(staging, target)
    except OSError:
        # another process built the same trial meanwhile; same digest, so the same arrays: keep theirs
        if not target.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def _write_padding(cache_dir: Path, model: TAGFModel, device: torch.device) -> None:
    black = np.zeros((1, FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8)  # −1 everywhere once normalised
    silence = np.zeros((1, LOGMEL_FRAMES, LOGMEL_BANDS), dtype=np.float32)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        video=_embed_faces(model, black, device, 1)[0],
        audio=_embed_logmel(model, silence, device, 1)[0],
    )
    atomic_write(cache_dir / PADDING_FILE, buffer.getvalue())


def _read_padding(cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(video 512, audio 128) float32 from ``padding.npz``; TagfError naming the file if unusable."""
    path = cache_dir / PADDING_FILE
    try:
        stored = np.load(path)
        if not isinstance(stored, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with stored:
            video, audio = np.asarray(stored["video"]), np.asarray(stored["audio"])
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise TagfError(f"{path}: missing or unreadable ({e}); rebuild the cache") from e
    for name, array, width in (("video", video, VIDEO_DIM), ("audio", audio, AUDIO_DIM)):
        if array.dtype != np.float32 or array.shape != (width,):
            raise TagfError(f"{path}: {name} is {array.dtype} {array.shape}, expected float32 ({width},)")
    return video, audio


# ---- checks and cache.json --------------------------------------------------------------------------------


def _trial_problem(cache_dir: Path, trial: str, length: int) -> str | None:
    """What is wrong with a cached trial's arrays (naming the file), or None if both have the expected shape.

    Reads only the .npy headers (memory-mapped), so checking all trials is cheap.
    """
    for name, width in _EMBEDDING_FILES.values():
        path = cache_dir / trial / name
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, EOFError, ValueError) as e:
            return f"{path}: missing or unreadable ({e})"
        if array.dtype != np.float32 or tuple(array.shape) != (length, width):
            return f"{path}: holds {array.dtype} {tuple(array.shape)}, expected float32 {(length, width)}"
    return None


def _read_cache_manifest(cache_dir: Path) -> dict[str, Any]:
    """Read and check ``cache.json``; raise TagfError naming it if the cache is unfinished or foreign."""
    path = cache_dir / CACHE_NAME
    if not path.is_file():
        raise TagfError(f"{path}: no cache manifest; the embedding cache was never finished, rebuild it")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TagfError(f"{path}: not a readable JSON cache manifest ({e}); rebuild the cache") from e
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        raise TagfError(f"{path}: not a tagf embedding cache (expected format {CACHE_FORMAT!r})")
    if data.get("version") != CACHE_VERSION or data.get("crop_size") != CROP_SIZE:
        raise TagfError(
            f"{path}: cache version {data.get('version')!r}, crop {data.get('crop_size')!r} is not what this tagf "
            f"builds (version {CACHE_VERSION}, crop {CROP_SIZE}); rebuild the cache"
        )
    if not isinstance(data.get("trials"), dict) or not all(isinstance(e, dict) for e in data["trials"].values()):
        raise TagfError(f"{path}: 'trials' must map each trial name to an object")
    return data


def _is_complete(cache_dir: Path, digest: str, records: Sequence[TrialRecord]) -> bool:
    """True if ``cache.json`` is finished for this digest and every record's arrays and the padding are usable."""
    try:
        data = _read_cache_manifest(cache_dir)
        _read_padding(cache_dir)
    except TagfError:
        return False
    cached = data["trials"]
    return data.get("digest") == digest and all(
        cached.get(r.trial) == {"input_digest": r.input_digest, "length": r.length}
        and _trial_problem(cache_dir, r.trial, r.length) is None
        for r in records
    )


def _tagf_version() -> str:
    try:
        return package_version("tagf")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _write_cache_manifest(cache_dir: Path, digest: str, records: Sequence[TrialRecord]) -> None:
    payload = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "digest": digest,
        "tagf_version": _tagf_version(),
        "crop_size": CROP_SIZE,
        "trials": {r.trial: {"input_digest": r.input_digest, "length": r.length} for r in records},
    }
    atomic_write(cache_dir / CACHE_NAME, json.dumps(payload, indent=2) + "\n")
