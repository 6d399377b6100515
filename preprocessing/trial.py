"""Preprocess one raw trial: labels, faces, log-mel patches and video frame numbers of its kept frames.

A re-run skips a trial whose recorded input digest matches and whose arrays are complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from preprocessing.annotations import read_annotation
from preprocessing.discovery import TrialSource
from preprocessing.faces import HaarFaceCollector, fit_to_frame_count, load_cropped_faces, one_blas_thread
from preprocessing.logmel import SAMPLE_RATE, log_mel_rows, patches_for_frames
from preprocessing.media import read_video
from preprocessing.publish import TrialOutcome, failure, publish_trial, up_to_date_record
from tagf_core.data.layout import (
    FACE_SIZE,
    FRAMES_FILE,
    LABEL_FILE,
    LOGMEL_FILE,
    VIDEO_FILE,
    TrialRecord,
    check_trial_name,
)
from tagf_core.errors import TagfError

log = logging.getLogger(__name__)

# bump when the arrays change for the same inputs: a re-run then redoes every trial (2: frames.npy added)
PIPELINE_VERSION = "2"
_CHUNK = 1 << 20


def _hash_file(digest: hashlib._Hash, path: Path) -> None:
    digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def input_digest(source: TrialSource) -> str:
    """sha256 over the pipeline version, the trial's partition, the annotation and video bytes, and the
    names and sizes of its face crops (reading ~10⁴ jpgs per trial just to skip it would cost more than
    it protects: a crop edited in place at the same size is not noticed)."""
    digest = hashlib.sha256()
    digest.update(f"tagf-preprocess {PIPELINE_VERSION} face={FACE_SIZE} sr={SAMPLE_RATE}\0".encode())
    digest.update(f"{source.trial}\0{source.partition}\0".encode())
    for path in (source.annotation, source.video):
        if path is not None:
            _hash_file(digest, path)
    if source.faces is not None:
        for entry in sorted(os.scandir(source.faces), key=lambda e: e.name):
            digest.update(f"{entry.name}\0{entry.stat().st_size}\0".encode())
    return digest.hexdigest()


def _compute_arrays(source: TrialSource, digest: str) -> tuple[dict[str, np.ndarray], TrialRecord, list[str]]:
    """Decode and compute every array of one trial in memory (bounded by the trial's own output)."""
    assert source.video is not None  # discovery records a problem for a trial without a video
    warnings: list[str] = []
    annotation = read_annotation(source.annotation) if source.annotation is not None else None
    use_haar = source.faces is None
    # without cropped_aligned faces, kept frames are known before decoding only for labelled trials;
    # an unlabelled trial keeps every frame (None), so one pass decodes audio and detects faces together
    collector = HaarFaceCollector(annotation.kept_frames if annotation else None, FACE_SIZE) if use_haar else None
    video = read_video(source.video, frame_sink=collector)
    if annotation is not None:
        if len(annotation.values) > video.frame_count:
            raise TagfError(
                f"{source.annotation}: {len(annotation.values)} annotation rows but {source.video.name} "
                f"has only {video.frame_count} frames"
            )
        kept_frames = annotation.kept_frames
    else:
        kept_frames = np.arange(video.frame_count)
    if len(kept_frames) == 0:
        raise TagfError(f"{source.video}: no frames to keep (empty video)")

    if collector is not None:
        faces, missing = collector.result()
        if annotation is None:
            faces, missing = fit_to_frame_count(faces, missing, len(kept_frames))
        warnings.append(
            f"no cropped_aligned folder: faces detected with OpenCV's Haar cascade "
            f"({missing} of {len(kept_frames)} frames without a face)"
        )
    else:
        assert source.faces is not None
        faces, missing = load_cropped_faces(source.faces, kept_frames, size=FACE_SIZE)

    if not video.has_audio:
        warnings.append(f"{source.video.name} has no audio track: using silence")
    rows = log_mel_rows(video.audio)
    logmel = patches_for_frames(rows, kept_frames, video.fps)

    frames = kept_frames.astype(np.int32)  # T: which video frame each row is (the -5 rows are gone)
    arrays: dict[str, np.ndarray] = {VIDEO_FILE: faces, LOGMEL_FILE: logmel, FRAMES_FILE: frames}
    if annotation is not None:
        arrays[LABEL_FILE] = annotation.kept_values
    record = TrialRecord(
        trial=source.trial,
        video=source.video.name,
        partition=source.partition,
        length=len(kept_frames),
        fps=float(video.fps),
        frames_without_face=int(missing),
        face_source="haar_cascade" if use_haar else "cropped_aligned",
        has_audio=video.has_audio,
        input_digest=digest,
    )
    return arrays, record, warnings


def process_trial(source: TrialSource, out: Path) -> TrialOutcome:
    """Preprocess one trial unless it is up to date. Never raises for bad input: it returns a failure."""
    try:
        check_trial_name(source.trial)
        if source.problem:
            raise TagfError(source.problem)
        digest = input_digest(source)
        existing = up_to_date_record(out, source.trial, digest)
        if existing is not None:
            return TrialOutcome(source.trial, "skipped", existing)
        with one_blas_thread():
            arrays, record, warnings = _compute_arrays(source, digest)
        publish_trial(out, record, arrays)
        return TrialOutcome(source.trial, "done", record, warnings=tuple(warnings))
    except (TagfError, OSError) as e:
        return failure(source.trial, e)
