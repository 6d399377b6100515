"""Building the frozen-backbone embedding cache: per-frame IR-50 and VGGish outputs computed once, so a
``--backbone frozen`` epoch costs seconds. Its on-disk layout is defined in ``tagf_core.data.layout``; the
``EmbeddingWindowDataset`` reads it.

Pass every record of the manifest: the cache is then shared by all folds, emotions and runs on that dataset.
Both backbones run in eval mode on the eval centre crop, so frozen mode trains on what the eval model computes:
no crop/flip augmentation and no batch statistics in the backbones' BatchNorm layers, unlike a reference
training step with frozen backbones (which keeps ``model.train()`` and the random crop, ref §2.6).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagf_core.atomic import atomic_folder
from tagf_core.data.layout import (
    CACHE_FORMAT,
    CACHE_VERSION,
    EMBEDDING_FILES,
    FACE_SIZE,
    LOGMEL_BANDS,
    LOGMEL_FILE,
    LOGMEL_FRAMES,
    VIDEO_FILE,
    TrialRecord,
    cache_is_complete,
    cached_trial_problem,
    check_trial_arrays,
    check_trial_name,
    embedding_cache_folder,
    embeddings_root,
    read_padding,
    write_cache_manifest,
    write_padding,
)
from tagf_core.data.transforms import transform_video
from tagf_core.errors import TagfError
from tagf_core.model.tagf import TAGFModel

logger = logging.getLogger(__name__)


def embedding_digest(model: TAGFModel, records: Sequence[TrialRecord], crop_size: int) -> str:
    """sha256 (hex) over what the cached embeddings depend on.

    That is: every tensor of both backbones' state dicts (name, dtype, shape and bytes), each record's trial
    name and ``input_digest`` in trial order, the crop size and ``CACHE_VERSION``. The layers after the
    backbones do not enter, so training them leaves the digest unchanged.
    """
    digest = hashlib.sha256()
    digest.update(f"{CACHE_FORMAT} v{CACHE_VERSION} crop {crop_size}\n".encode())
    _hash_backbones(digest, model)
    for record in sorted(records, key=lambda r: r.trial):
        digest.update(f"trial {record.trial} {record.input_digest}\n".encode())
    return digest.hexdigest()


def backbone_digest(model: TAGFModel) -> str:
    """sha256 (hex) of both backbones' weights: which backbones a frozen run's embeddings came from."""
    digest = hashlib.sha256()
    _hash_backbones(digest, model)
    return digest.hexdigest()


def _hash_backbones(digest: Any, model: TAGFModel) -> None:
    for prefix, backbone in (("visual_backbone", model.visual_backbone), ("audio_backbone", model.audio_backbone)):
        for name, tensor in backbone.state_dict().items():
            flat = tensor.detach().to("cpu").contiguous().reshape(-1)
            digest.update(f"{prefix}.{name} {flat.dtype} {tuple(tensor.shape)}\n".encode())
            # raw bytes through a uint8 view: works for every dtype numpy lacks (bfloat16) and copies nothing
            digest.update(memoryview(flat.view(torch.uint8).numpy()))


def build_embedding_cache(
    processed_root: Path,
    model: TAGFModel,
    records: Sequence[TrialRecord],
    *,
    crop_size: int,
    batch_size: int,
    device: torch.device | str = "cpu",
    cache_root: Path | None = None,
    on_trial: Callable[[str], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Path:
    """Embed every frame of ``records`` once and return the cache folder (layout in ``tagf_core.data.layout``).

    A trial already in the folder with arrays of the right shape is kept as is; a missing or unreadable one is
    (re)computed, so an interrupted build resumes where it stopped. Each trial is processed ``batch_size``
    frames at a time, read from and written to memory maps, so memory stays bounded by one chunk even for a
    36 000-frame trial.

    Args:
        processed_root: the preprocessed dataset (``manifest.json`` and one folder per trial).
        model: its backbones must already be on ``device``; they run in eval mode, the model's mode is restored.
        records: the trials to embed; pass the whole manifest so one folder serves every fold.
        crop_size: the eval centre crop of the faces (``data.crop_size``).
        device: where the inputs go; the embeddings come back to host memory.
        cache_root: where caches are kept (``data.embeddings_root``); None: ``<processed_root>/embeddings``.
        on_trial: called with each trial's name once its embeddings are written (not for trials reused).
        on_start: called once with the number of trials to embed, before the first (not when all are cached).

    Raises:
        TagfError: a duplicate trial, or a trial's preprocessed arrays are missing or mis-shaped (naming the file),
            or the cache cannot be written (a read-only or full disk).
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

    digest = embedding_digest(model, ordered, crop_size)
    cache_dir = embedding_cache_folder(embeddings_root(processed_root, cache_root), digest)
    if cache_is_complete(cache_dir, digest, ordered, crop_size):
        logger.info("reusing the embedding cache %s (%d trials)", cache_dir, len(ordered))
        return cache_dir

    todo = [r for r in ordered if cached_trial_problem(cache_dir, r.trial, r.length) is not None]
    for record in todo:
        check_trial_arrays(processed_root, record)  # fail now, not after hours of embedding the trials before it
    device = torch.device(device)
    embed = _Embedder(model, device, batch_size, crop_size)
    logger.info("embedding %d of %d trials into %s", len(todo), len(ordered), cache_dir)
    if on_start is not None:
        on_start(len(todo))
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            try:
                read_padding(cache_dir)
            except TagfError:
                black = np.zeros((1, FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8)  # −1 everywhere once normalised
                silence = np.zeros((1, LOGMEL_FRAMES, LOGMEL_BANDS), dtype=np.float32)
                write_padding(cache_dir, embed.faces(black)[0], embed.logmel(silence)[0])
            for record in todo:
                _embed_trial(processed_root, cache_dir, record, embed)
                if on_trial is not None:
                    on_trial(record.trial)
        write_cache_manifest(cache_dir, digest, ordered, crop_size, _tagf_version())
    except OSError as e:  # a read-only processed folder, a full disk: the trials embedded so far are kept
        raise TagfError(
            f"{e.filename or cache_dir}: cannot write the embedding cache ({e.strerror or e}); "
            "point data.embeddings_root (--embeddings-root) at a writable folder"
        ) from e
    return cache_dir


class _Embedder:
    """The frozen backbones on ``device``, ``batch_size`` frames at a time, inputs prepared as the Datasets do."""

    def __init__(self, model: TAGFModel, device: torch.device, batch_size: int, crop_size: int) -> None:
        self.model, self.device, self.batch_size, self.crop_size = model, device, batch_size, crop_size

    def faces(self, faces: np.ndarray) -> np.ndarray:
        """faces n×48×48×3 uint8 → n×512 float32: the eval centre crop, normalised as ``WindowDataset`` does."""
        crops = transform_video(np.asarray(faces), train=False, crop_size=self.crop_size)  # n×3×c×c in [−1, 1]
        return self.model.embed_faces(crops.to(self.device), self.batch_size).float().cpu().numpy()

    def logmel(self, patches: np.ndarray) -> np.ndarray:
        """patches n×96×64 (float16 on disk) → n×128 float32; float32 first, as ``WindowDataset`` reads them."""
        logmel = torch.from_numpy(np.asarray(patches, dtype=np.float32))
        return self.model.embed_logmel(logmel.to(self.device), self.batch_size).float().cpu().numpy()


def _embed_trial(processed_root: Path, cache_dir: Path, record: TrialRecord, embed: _Embedder) -> None:
    """Write ``cache_dir/<trial>/`` through a staging folder renamed into place when complete (``atomic_folder``).

    A complete trial folder already there is kept: another process (a run on another machine) built the same
    trial meanwhile, from the same digest, and may be reading it already.
    """
    source = processed_root / record.trial
    faces = np.load(source / VIDEO_FILE, mmap_mode="r")  # T×48×48×3 uint8
    logmel = np.load(source / LOGMEL_FILE, mmap_mode="r")  # T×96×64 float16

    def complete(folder: Path) -> bool:
        return cached_trial_problem(folder.parent, folder.name, record.length) is None

    with atomic_folder(cache_dir / record.trial, keep_existing=complete) as staging:
        outputs = {
            key: _allocated_memmap(staging / name, (record.length, width))
            for key, (name, width) in EMBEDDING_FILES.items()
        }
        for start in range(0, record.length, embed.batch_size):
            chunk = slice(start, min(start + embed.batch_size, record.length))
            outputs["video"][chunk] = embed.faces(faces[chunk])
            outputs["audio"][chunk] = embed.logmel(logmel[chunk])
        for array in outputs.values():
            array.flush()  # on disk before the rename makes the trial count as done
        del outputs


def _allocated_memmap(path: Path, shape: tuple[int, int]) -> np.memmap:
    """A float32 .npy memory map whose blocks are allocated now: a full disk is an OSError (ENOSPC) here, not a
    SIGBUS that kills the process at the first write into a page the file system cannot back."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it: as before
                raise OSError(e.errno, e.strerror, str(path)) from e
    return array


def _tagf_version() -> str:
    try:
        return package_version("tagf")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"
