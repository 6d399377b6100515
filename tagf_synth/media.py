"""Encoding the raw videos with PyAV, reproducibly: same frames and samples in, same bytes out.

* ``.mp4``: H.264 (libx264) video + AAC audio, like most Aff-Wild2 videos;
* ``.avi``: MPEG-4 part 2 video + 16-bit PCM audio, like the release's few AVI files.

PCM rather than MP3 in the AVI: the MP3 encoder's start delay makes FFmpeg's AVI muxer shift the video by
two frames and pad with empty chunks, so the header's frame count would disagree with the decoded frames.

Reproducibility: encoders run single-threaded (one thread makes the output independent of the core count),
x264's macroblock-tree rate control is off (it reads uninitialised memory at widths that are not a multiple
of 256, which made the bytes vary between runs), and the muxers run in ``bitexact`` mode, which leaves out
the library version tag; no creation time is written.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Literal

import av
import cv2
import numpy as np

logger = logging.getLogger(__name__)

Container = Literal["mp4", "avi"]

VIDEO_CODEC: dict[Container, str] = {"mp4": "libx264", "avi": "mpeg4"}
AUDIO_CODEC: dict[Container, str] = {"mp4": "aac", "avi": "pcm_s16le"}
# Each encoder's native sample format, so PyAV has nothing to resample.
AUDIO_SAMPLE_FORMAT: dict[Container, str] = {"mp4": "fltp", "avi": "s16"}
_MPEG4_QUANTISER = 5
_QP_TO_LAMBDA = 118  # FFmpeg's FF_QP2LAMBDA: global_quality is a quantiser in lambda units


class VideoWriter:
    """Write RGB frames one by one; the audio track (if any) is interleaved frame by frame.

    Use as a context manager; ``write_frame`` once per video frame, in order.
    """

    def __init__(
        self,
        path: Path,
        container: Container,
        fps: Fraction,
        width: int,
        height: int,
        audio: np.ndarray | None,
        sample_rate: int,
    ) -> None:
        self._path = path
        self._fps = fps
        self._audio_format = AUDIO_SAMPLE_FORMAT[container]
        self._audio = None if audio is None else _samples_in(audio, self._audio_format)
        self._sample_rate = sample_rate
        self._frames_written = 0
        self._output = av.open(str(path), mode="w", format=container, options={"fflags": "+bitexact"})
        video = self._output.add_stream(VIDEO_CODEC[container], rate=fps)
        if not isinstance(video, av.VideoStream):
            raise TypeError(f"{VIDEO_CODEC[container]} did not give a video stream")  # a broken PyAV build
        video.width = width
        video.height = height
        video.pix_fmt = "yuv420p"
        video.codec_context.thread_count = 1
        video.codec_context.flags |= av.codec.context.Flags.bitexact
        if container == "mp4":
            # mbtree=0: x264's macroblock-tree rate control reads uninitialised memory when the width is not a
            # multiple of 256 pixels, so the bytes varied from run to run; without it they do not.
            video.codec_context.options = {"preset": "veryfast", "crf": "22", "threads": "1", "x264-params": "mbtree=0"}
        else:
            # A fixed quantiser (like ffmpeg's -q:v 5) gives good quality without a bit rate to tune.
            video.codec_context.qscale = True
            video.codec_context.global_quality = _MPEG4_QUANTISER * _QP_TO_LAMBDA
        self._video = video
        self._audio_stream: av.AudioStream | None = None
        if self._audio is not None:
            audio_stream = self._output.add_stream(AUDIO_CODEC[container], rate=sample_rate, layout="mono")
            if not isinstance(audio_stream, av.AudioStream):
                raise TypeError(f"{AUDIO_CODEC[container]} did not give an audio stream")
            audio_stream.codec_context.thread_count = 1
            audio_stream.codec_context.flags |= av.codec.context.Flags.bitexact
            self._audio_stream = audio_stream

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            self._finish()
        else:
            self._output.close()  # the half-written file is thrown away with the temporary folder

    def write_frame(self, rgb: np.ndarray) -> None:
        # Convert to the encoder's YUV 4:2:0 with OpenCV (BT.601, limited range: what FFmpeg assumes when
        # decoding): a third faster than letting PyAV's swscale do it, and the result is the same to ±1.
        yuv = np.asarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = self._frames_written
        self._output.mux(self._video.encode(frame))
        self._frames_written += 1
        self._write_audio_until(self._frames_written)

    def _write_audio_until(self, frames: int) -> None:
        """Encode the audio samples that belong to the first ``frames`` video frames."""
        if self._audio is None or self._audio_stream is None:
            return
        start = _sample_at(frames - 1, self._fps, self._sample_rate)
        end = min(len(self._audio), _sample_at(frames, self._fps, self._sample_rate))
        if end <= start:
            return
        chunk = av.AudioFrame.from_ndarray(self._audio[None, start:end], format=self._audio_format, layout="mono")
        chunk.sample_rate = self._sample_rate
        chunk.pts = start
        chunk.time_base = Fraction(1, self._sample_rate)
        self._output.mux(self._audio_stream.encode(chunk))

    def _finish(self) -> None:
        self._output.mux(self._video.encode(None))
        if self._audio_stream is not None:
            self._output.mux(self._audio_stream.encode(None))
        self._output.close()
        logger.debug("wrote %s (%d frames)", self._path.name, self._frames_written)


def _sample_at(frame: int, fps: Fraction, sample_rate: int) -> int:
    return int(round(Fraction(frame) / fps * sample_rate))


def _samples_in(audio: np.ndarray, sample_format: str) -> np.ndarray:
    clipped = np.clip(audio, -1.0, 1.0)
    if sample_format == "s16":
        return np.round(clipped * 32767.0).astype(np.int16)
    return clipped.astype(np.float32)
