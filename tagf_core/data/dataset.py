"""Windows of preprocessed trials as torch Datasets: images for the backbones (``WindowDataset``, release
mode) or the frozen backbones' cached embeddings (``EmbeddingWindowDataset``, frozen mode), the same windows.

One sample is one window (ref §2.5): L frames of faces, log-mel patches and one emotion's labels, zero-padded
to L for a trial shorter than L. The arrays are memory-mapped, as in the reference (§8), and opened lazily in
each process, so a Dataset pickles small and works with DataLoader workers. A Dataset is given the manifest's
records of its trials (read once per run), never the manifest file.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from tagf_core.data.layout import (
    AUDIO_EMBEDDING_DIM,
    EMBEDDING_FILES,
    EMOTIONS,
    FACE_SIZE,
    FRAMES_FILE,
    LABEL_FILE,
    LOGMEL_BANDS,
    LOGMEL_FILE,
    LOGMEL_FRAMES,
    VIDEO_EMBEDDING_DIM,
    VIDEO_FILE,
    Emotion,
    TrialRecord,
    check_cached_trials,
    check_trial_arrays,
    read_cache_manifest,
    read_padding,
)
from tagf_core.data.transforms import transform_video
from tagf_core.data.windows import Window, check_window_args, list_windows
from tagf_core.errors import TagfError


class WindowRows(TypedDict):
    """What every window sample holds besides its inputs; a DataLoader batches each tensor to B×… and the rest
    to lists or B-long tensors."""

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


class WindowSample(WindowRows):
    """One window of images for the backbones."""

    video: Tensor
    """L×3×crop×crop float32 in [−1, 1]; padded frames are −1 (black before normalisation, ref §2.5)."""
    logmel: Tensor
    """L×96×64 float32, not normalised (ref §2.6); padded frames are 0."""


class TrialWindows:
    """What both window Datasets share: the given trials' records and windows, memory maps opened lazily
    in each process (at most ``max_open_trials`` trials' at once: each map holds a file descriptor, and all
    594 Aff-Wild2 trials open would exceed the usual open-file limit), and the label/mask/frame rows of a window.

    Subclasses name each trial's files in ``trial_files`` and build their own sample in ``__getitem__``.

    Raises:
        TagfError: unknown emotion, a trial given twice, bad window sizes, or a preprocessed array that is
            missing or has the wrong dtype or shape (naming the file).
    """

    def __init__(
        self,
        root: Path,
        records: Sequence[TrialRecord],
        *,
        emotion: Emotion,
        window_len: int,
        hop_len: int,
        max_open_trials: int,
    ) -> None:
        if emotion not in EMOTIONS:
            raise TagfError(f"emotion {emotion!r} is not one of {', '.join(EMOTIONS)}")
        check_window_args(window_len, hop_len)
        if max_open_trials < 1:
            raise ValueError(f"max_open_trials {max_open_trials} must be at least 1")
        self.root = Path(root)
        self.emotion = emotion
        self.window_len = window_len
        self.hop_len = hop_len
        self.max_open_trials = max_open_trials
        self._label_column = EMOTIONS.index(emotion)
        self.records: dict[str, TrialRecord] = {}
        for record in records:
            if record.trial in self.records:
                raise TagfError(f"trial {record.trial!r} is given twice")
            self.records[record.trial] = record
        for record in self.records.values():
            check_trial_arrays(self.root, record)  # fail now, not hours into a fold (STYLE: check at the boundary)
        self.windows: tuple[Window, ...] = tuple(
            list_windows({t: r.length for t, r in self.records.items()}, window_len, hop_len)
        )
        self._open: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.windows)

    def __getstate__(self) -> dict[str, object]:
        # pickling a memmap copies its whole array; a worker re-opens the maps itself instead
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        return state

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop before every epoch; only a Dataset with per-epoch randomness uses it."""

    def trial_files(self, trial: str) -> dict[str, Path]:
        """The trial's arrays by key: ``frames`` (and ``label`` for labelled trials) from the preprocessed data."""
        files = {"frames": self.root / trial / FRAMES_FILE}
        if self.records[trial].labelled:
            files["label"] = self.root / trial / LABEL_FILE
        return files

    def trial_arrays(self, trial: str) -> dict[str, np.ndarray]:
        """The trial's arrays (``trial_files``), memory-mapped read-only."""
        arrays = self._open.get(trial)
        if arrays is None:
            arrays = {key: np.load(path, mmap_mode="r") for key, path in self.trial_files(trial).items()}
            self._open[trial] = arrays
            if len(self._open) > self.max_open_trials:
                self._open.popitem(last=False)  # least recently used; its maps close when collected
        else:
            self._open.move_to_end(trial)
        return arrays

    def window_rows(self, window: Window, arrays: dict[str, np.ndarray]) -> WindowRows:
        """What every sample of ``window`` holds besides its inputs: label, mask and frames padded to L, and where
        the window lies."""
        rows, n, size = slice(window.start, window.end), window.length, self.window_len
        label = np.zeros((size, 1), dtype=np.float32)  # ref §2.5: zeros on padding and for unlabelled trials
        if "label" in arrays:
            label[:n, 0] = arrays["label"][rows, self._label_column]
        frame_numbers = np.full(size, -1, dtype=np.int64)  # L; −1 marks padding, never a video frame
        frame_numbers[:n] = arrays["frames"][rows]
        mask = torch.zeros(size, dtype=torch.bool)
        mask[:n] = True
        return WindowRows(
            label=torch.from_numpy(label), mask=mask, frames=torch.from_numpy(frame_numbers), trial=window.trial,
            start=window.start, length=n,
        )  # fmt: skip


class WindowDataset(TrialWindows, Dataset[WindowSample]):
    """Every window of the trials of ``records`` under a preprocessed ``root``.

    Args:
        root: folder holding ``manifest.json`` and one folder per trial (see ``layout.py``).
        records: the manifest's records of the trials to serve; windows follow this order, each trial's in start
            order.
        emotion: which label column to return (0 valence, 1 arousal).
        train: random crop + flip per window if True, centre crop otherwise (ref §2.6).
        seed: None draws the training crops from torch's global RNG (which DataLoader seeds per worker).
            An int derives each window's crop from (seed, epoch, index) instead, so the crops do not depend
            on the number of workers or on the RNG state at resume; call ``set_epoch`` every epoch.
        max_open_trials: trials whose memory maps are kept open per process; each map holds a file
            descriptor, so keeping all 594 trials open (2,200 maps) could exceed the open-file limit.

    Raises:
        TagfError: unknown emotion, bad window sizes or crop size, or a trial array that is missing or has the
            wrong dtype or shape (naming the file).

    Order is fixed: shuffling is the sampler's job. The reference shuffles the training windows once with a
    seed and then keeps that order for every epoch (ref §2.5).
    """

    def __init__(
        self,
        root: Path,
        records: Sequence[TrialRecord],
        *,
        emotion: Emotion,
        train: bool,
        window_len: int,
        hop_len: int,
        crop_size: int,
        seed: int | None = None,
        max_open_trials: int = 64,
    ) -> None:
        if not 1 <= crop_size <= FACE_SIZE:
            raise TagfError(f"crop_size {crop_size} must be between 1 and the {FACE_SIZE}-pixel face size")
        if seed is not None and seed < 0:
            raise TagfError(f"seed {seed} must be non-negative")
        super().__init__(
            root, records, emotion=emotion, window_len=window_len, hop_len=hop_len, max_open_trials=max_open_trials
        )
        self.train = train
        self.crop_size = crop_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch`` when a seed was given (see the class docstring)."""
        self.epoch = epoch

    def trial_files(self, trial: str) -> dict[str, Path]:
        """``video`` T×48×48×3 uint8, ``logmel`` T×96×64 float16, ``frames`` T int32, ``label`` T×2 float32."""
        trial_dir = self.root / trial
        return {"video": trial_dir / VIDEO_FILE, "logmel": trial_dir / LOGMEL_FILE, **super().trial_files(trial)}

    def _generator(self, index: int) -> torch.Generator | None:
        if self.seed is None:
            return None
        state = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1, dtype=np.uint64)[0]
        return torch.Generator().manual_seed(int(state))

    def __getitem__(self, index: int) -> WindowSample:
        window = self.windows[index]
        arrays = self.trial_arrays(window.trial)
        rows = slice(window.start, window.end)
        n, size = window.length, self.window_len
        # ref §2.5: a trial shorter than L is zero-padded; black faces become −1 after normalisation
        faces = np.zeros((size, FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8)
        faces[:n] = arrays["video"][rows]
        logmel = np.zeros((size, LOGMEL_FRAMES, LOGMEL_BANDS), dtype=np.float32)
        logmel[:n] = arrays["logmel"][rows]
        video = transform_video(faces, train=self.train, crop_size=self.crop_size, generator=self._generator(index))
        return WindowSample(video=video, logmel=torch.from_numpy(logmel), **self.window_rows(window, arrays))


class EmbeddingWindowSample(WindowRows):
    """One window of cached embeddings: the rows of ``WindowSample`` with the images replaced."""

    video_embeddings: Tensor
    """L×512 float32; padded frames hold the embedding of a black (−1) face."""
    audio_embeddings: Tensor
    """L×128 float32; padded frames hold the embedding of an all-zero log-mel patch."""


class EmbeddingWindowDataset(TrialWindows, Dataset[EmbeddingWindowSample]):
    """Every window of the trials of ``records``, as cached embeddings: the windows and labels of ``WindowDataset``.

    Args:
        cache_dir: a folder built by ``tagf_core.training.embed.build_embedding_cache`` (layout in ``layout.py``).
        processed_root: the preprocessed dataset the cache was built from (labels and frame numbers).
        records: the manifest's records of the trials to serve; windows follow this order.
        emotion: which label column to return.
        crop_size: the face crop the cache was embedded from (checked against ``cache.json``).
        max_open_trials: trials whose memory maps are kept open per process (each map holds a file descriptor).

    Raises:
        TagfError: unknown emotion, bad window sizes, a cache that is unfinished, was built from other
            preprocessed data or crop, or lacks a trial, or an array that is missing or has the wrong shape.

    Padded frames get the padding embeddings, not zeros: the reference zero-pads the images before the
    backbones (ref §2.5), so that is what the backbones saw there.
    """

    def __init__(
        self,
        cache_dir: Path,
        processed_root: Path,
        records: Sequence[TrialRecord],
        *,
        emotion: Emotion,
        window_len: int,
        hop_len: int,
        crop_size: int,
        max_open_trials: int = 64,
    ) -> None:
        super().__init__(
            processed_root, records, emotion=emotion, window_len=window_len, hop_len=hop_len,
            max_open_trials=max_open_trials,
        )  # fmt: skip
        self.cache_dir = Path(cache_dir)
        # check at the boundary: a stale or broken cache fails here, not hours into a fold
        cached = read_cache_manifest(self.cache_dir, crop_size)["trials"]
        check_cached_trials(self.cache_dir, cached, list(self.records.values()))
        self.padding_video, self.padding_audio = read_padding(self.cache_dir)  # 512, 128 float32

    def trial_files(self, trial: str) -> dict[str, Path]:
        """``video`` T×512 and ``audio`` T×128 float32 from the cache; ``frames`` and ``label`` as preprocessed."""
        cached = {key: self.cache_dir / trial / name for key, (name, _) in EMBEDDING_FILES.items()}
        return {**cached, **super().trial_files(trial)}

    def __getitem__(self, index: int) -> EmbeddingWindowSample:
        window = self.windows[index]
        arrays = self.trial_arrays(window.trial)
        rows = slice(window.start, window.end)
        n, size = window.length, self.window_len
        video = np.empty((size, VIDEO_EMBEDDING_DIM), dtype=np.float32)
        video[:n] = arrays["video"][rows]
        video[n:] = self.padding_video  # ref §2.5: the reference pads before the backbones
        audio = np.empty((size, AUDIO_EMBEDDING_DIM), dtype=np.float32)
        audio[:n] = arrays["audio"][rows]
        audio[n:] = self.padding_audio
        return EmbeddingWindowSample(
            video_embeddings=torch.from_numpy(video),
            audio_embeddings=torch.from_numpy(audio),
            **self.window_rows(window, arrays),
        )


RunDataset = WindowDataset | EmbeddingWindowDataset
"""Images through the backbones (release mode) or cached embeddings (frozen mode): the same windows."""
