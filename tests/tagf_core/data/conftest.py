"""Tiny preprocessed datasets written into tmp_path, following tagf_core.data.layout."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

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
    write_manifest,
)

TrialSpec = tuple[str, Partition, int]  # (name, partition, T)


def make_record(trial: str, partition: Partition, length: int = 10) -> TrialRecord:
    return TrialRecord(
        trial=trial,
        video=f"{trial.removesuffix('_left').removesuffix('_right')}.mp4",
        partition=partition,
        length=length,
        fps=30.0,
        frames_without_face=0,
        face_source="cropped_aligned",
        has_audio=True,
        input_digest="0" * 64,
    )


def face_pixels(length: int) -> np.ndarray:
    """T×48×48×3 uint8 whose pixel (t, r, c) is (t + 3r + 5c) mod 256: frame and position can be read back."""
    t, r, c = np.meshgrid(np.arange(length), np.arange(FACE_SIZE), np.arange(FACE_SIZE), indexing="ij")
    return np.repeat(((t + 3 * r + 5 * c) % 256).astype(np.uint8)[..., None], 3, axis=-1)


def frame_numbers(record: TrialRecord) -> np.ndarray:
    """int32 T: every frame of an unlabelled trial; for a labelled one, as if frames 0–1 and the 5 frames
    after row T//2 were -5 rows (kept frames 2, 3, …, then a jump of 6)."""
    t = np.arange(record.length)
    if not record.labelled:
        return t.astype(np.int32)
    return (t + 2 + 5 * (t >= record.length // 2)).astype(np.int32)


def write_trial_arrays(root: Path, record: TrialRecord) -> None:
    """video as face_pixels, logmel[t] = t, label[t] = (t/100, −t/100), frames as frame_numbers."""
    trial_dir = root / record.trial
    trial_dir.mkdir(parents=True, exist_ok=True)
    t = np.arange(record.length)
    np.save(trial_dir / FRAMES_FILE, frame_numbers(record))
    np.save(trial_dir / VIDEO_FILE, face_pixels(record.length))
    logmel = np.broadcast_to(t[:, None, None], (record.length, LOGMEL_FRAMES, LOGMEL_BANDS))
    np.save(trial_dir / LOGMEL_FILE, logmel.astype(np.float16))
    if record.labelled:
        np.save(trial_dir / LABEL_FILE, np.stack([t / 100, -t / 100], axis=1).astype(np.float32))


@pytest.fixture
def record_factory() -> Callable[..., TrialRecord]:
    """Factory for manifest records without arrays: ``record_factory(name, partition, length=10)``."""
    return make_record


@pytest.fixture
def write_processed(tmp_path: Path) -> Callable[[Sequence[TrialSpec]], Path]:
    """Factory: write the given trials and their manifest under tmp_path/processed and return that root."""

    def write(trials: Sequence[TrialSpec]) -> Path:
        root = tmp_path / "processed"
        records = [make_record(name, partition, length) for name, partition, length in trials]
        for record in records:
            write_trial_arrays(root, record)
        write_manifest(root, records)
        return root

    return write
