"""Arrays of any one video file, what ``tagf predict --video FILE`` feeds the model.

Such a video has no annotation and no organiser crops, so it is treated as an unlabelled trial without
a cropped_aligned folder: every frame is kept (T = the demuxed frame count), OpenCV's Haar cascade finds
the largest face in each frame, and each frame gets the log-mel patch that starts at its time. The video
is read once: faces are detected while the audio is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from preprocessing.faces import FaceArray, HaarFaceCollector, fit_to_frame_count, one_blas_thread
from preprocessing.logmel import log_mel_rows, patches_for_frames
from preprocessing.media import read_video
from tagf_core.data.layout import FACE_SIZE
from tagf_core.errors import TagfError


@dataclass(frozen=True)
class VideoArrays:
    """One video's arrays, row i = video frame i, as a trial folder of the processed layout holds them."""

    faces: FaceArray = field(repr=False)
    """uint8 T×size×size×3 RGB, the largest face of each frame; black where none was found."""
    logmel: npt.NDArray[np.float16] = field(repr=False)
    """float16 T×96×64, the log-mel patch of each frame (silence when the video has no audio)."""
    frames: npt.NDArray[np.int32] = field(repr=False)
    """int32 T, the 0-based video frame number of each row: ``arange(T)``."""
    fps: float
    """Frame rate from the container."""
    frames_without_face: int
    """Rows whose face is black."""
    has_audio: bool
    warnings: tuple[str, ...]
    """One line each, without the file's path (the caller prefixes it): no audio track, no face in any frame."""

    @property
    def length(self) -> int:
        """T, the number of frames."""
        return len(self.frames)


def video_arrays(path: Path, *, face_size: int = FACE_SIZE) -> VideoArrays:
    """Faces, log-mel patches and frame numbers of every frame of a video file (.mp4, .avi, …).

    A video without audio gets silence and a warning; one in which no frame shows a face gets black
    faces and a warning (predictions then rest on the audio alone).

    Raises:
        TagfError: one line naming the file, when it is missing, unreadable, has no video stream or no
            video frame.
    """
    path = Path(path)
    collector = HaarFaceCollector(None, face_size)  # None: keep every frame, its count is known at the end
    with one_blas_thread():
        video = read_video(path, frame_sink=collector)
    frame_count = video.frame_count
    if frame_count == 0:
        raise TagfError(f"{path}: the video stream holds no frames")
    faces, missing = fit_to_frame_count(*collector.result(), frame_count)
    frames = np.arange(frame_count, dtype=np.int32)  # T
    logmel = patches_for_frames(log_mel_rows(video.audio), frames, video.fps)  # T×96×64

    warnings = []
    if not video.has_audio:
        warnings.append("no audio track, using silence")
    if missing == frame_count:
        consequence = "predictions rest on the audio alone" if video.has_audio else "nothing to predict from"
        warnings.append(f"no face found in any of the {frame_count} frames ({consequence})")
    return VideoArrays(
        faces=faces,
        logmel=logmel,
        frames=frames,
        fps=float(video.fps),
        frames_without_face=int(missing),
        has_audio=video.has_audio,
        warnings=tuple(warnings),
    )
