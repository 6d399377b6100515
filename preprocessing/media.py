"""Reading raw Aff-Wild2 videos with PyAV: frame rate, exact frame count, 16 kHz mono audio, RGB frames.

A trial's video is meant to be decoded once. ``read_video`` demuxes the file in one pass and, from that
pass, counts the video packets, decodes and resamples the audio, and (only if asked) decodes the
video frames and hands each one to a callback (``frame_sink``), so the Haar fallback can run in the
same pass while holding one full-size frame at a time. Without a callback, video packets are counted,
not decoded, and ``DecodedVideo.frames()`` decodes them later in a second, lazy pass.
``probe_video`` and ``decode_audio_16k_mono`` are thin views of ``read_video``; ``iter_video_frames``
is the lazy frame generator.

Every PyAV or OS failure on the file becomes a one-line ``TagfError`` naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
import numpy as np
import numpy.typing as npt

from tagf_core.errors import TagfError

log = logging.getLogger(__name__)

AUDIO_RATE = 16_000
_INT16_SCALE = 32768.0  # ref §2.2 step 3: the reference reads ffmpeg's s16 wav and divides by 32768

RgbFrame = npt.NDArray[np.uint8]
"""One decoded video frame: uint8 H×W×3, RGB."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container and one demuxing pass say about a video."""

    fps: float
    """Frame rate from the container: the stream's guessed rate (what OpenCV's CAP_PROP_FPS reports with
    a recent FFmpeg), falling back to its average rate."""
    frame_count: int
    """Video frames counted by demuxing: non-empty video packets that are not flagged for discard."""
    container_frames: int
    """Frame count written in the container header (``nb_frames``, what cv2's CAP_PROP_FRAME_COUNT reads;
    the reference used it as T for unlabelled trials). 0 when the container does not say."""
    has_audio: bool
    width: int
    height: int


@dataclass(frozen=True)
class DecodedVideo:
    """The result of one pass over a video file."""

    path: Path
    info: VideoInfo
    audio: npt.NDArray[np.float32] = field(repr=False)
    """16 kHz mono waveform, float32 (N,) in [−1, 1]; empty when the file has no audio or it was not requested."""
    decoded_frames: int | None
    """Frames the decoder produced when a ``frame_sink`` was given (normally ``info.frame_count``), else None."""

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def frame_count(self) -> int:
        return self.info.frame_count

    @property
    def has_audio(self) -> bool:
        return self.info.has_audio

    def frames(self) -> Iterator[RgbFrame]:
        """The video's frames (uint8 H×W×3 RGB), decoded lazily in a second pass over the file.

        The first pass only counted video packets, so the video is still decoded once; the file is read
        twice. Pass ``frame_sink`` to ``read_video`` instead to need a single read.
        """
        return iter_video_frames(self.path)


@contextmanager
def _unreadable_as_tagf_error(path: Path) -> Iterator[None]:
    """Turn PyAV/OS errors raised inside the block into a TagfError that names the file."""
    try:
        yield
    except (av.error.FFmpegError, OSError) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise TagfError(f"{path}: corrupt or unreadable video ({reason})") from e


def _open(path: Path) -> av.container.InputContainer:
    with _unreadable_as_tagf_error(path):
        if not path.is_file():
            raise TagfError(f"{path}: video file not found")
        return av.open(str(path), mode="r")


def _pick_audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    # ffmpeg's own default (what `ffmpeg -i X -ac 1 -ar 16000` used in the reference): the audio stream
    # with the most channels, the lowest index among equals
    streams = list(container.streams.audio)
    if not streams:
        return None
    return max(streams, key=lambda s: (s.codec_context.channels, -s.index))


def _frame_rate(stream: av.video.stream.VideoStream, path: Path) -> float:
    rate = stream.guessed_rate or stream.average_rate
    if not rate or float(rate) <= 0:
        raise TagfError(f"{path}: the video stream states no frame rate")
    return float(rate)


def read_video(
    path: Path,
    *,
    want_audio: bool = True,
    frame_sink: Callable[[RgbFrame], None] | None = None,
) -> DecodedVideo:
    """Read a video in one demuxing pass.

    Args:
        path: the raw video (.mp4, .avi, …).
        want_audio: decode the audio track (the one with most channels, as ffmpeg picks it) to 16 kHz
            mono float32. A file without audio gives an empty array; the caller decides whether to warn.
        frame_sink: if given, every decoded video frame (uint8 H×W×3 RGB, in display order) is passed
            to it as soon as it is decoded; without it video packets are only counted, never decoded.

    The audio is resampled by libswresample through ``AudioResampler(format="s16", layout="mono",
    rate=16000)`` and divided by 32768, which is what the reference's ``ffmpeg -ac 1 -ar 16000`` wav
    followed by int16/32768 gives.

    Raises:
        TagfError: the file is missing, is not a video, has no video stream, or fails to demux/decode.
    """
    path = Path(path)
    container = _open(path)
    with container:
        with _unreadable_as_tagf_error(path):
            if not container.streams.video:
                raise TagfError(f"{path}: has no video stream")
            video = container.streams.video[0]
            audio = _pick_audio_stream(container)
            fps = _frame_rate(video, path)
            if frame_sink is not None:
                video.thread_type = "AUTO"  # frame-level threading: same frames, faster
            streams: list[av.stream.Stream] = [video]
            resampler = None
            if audio is not None and want_audio:
                streams.append(audio)
                resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
            packets = container.demux(*streams)

        packet_count = 0
        decoded = 0
        chunks: list[npt.NDArray[np.int16]] = []
        while True:
            frames: list[RgbFrame] = []
            with _unreadable_as_tagf_error(path):
                packet = next(packets, None)
                if packet is None:
                    break
                if packet.stream.type == "video":
                    # the demuxer ends each stream with an empty packet (decoder flush); it is not a frame
                    if packet.size > 0 and not packet.is_discard:
                        packet_count += 1
                    if frame_sink is not None:
                        frames = [_rgb(f) for f in video.decode(packet)]
                elif resampler is not None:
                    assert audio is not None
                    for audio_frame in audio.decode(packet):
                        chunks.extend(_s16_samples(r) for r in resampler.resample(audio_frame))
            # outside the guard: an error raised by the caller's sink is the caller's, not a corrupt file
            for frame in frames:
                decoded += 1
                assert frame_sink is not None
                frame_sink(frame)
        with _unreadable_as_tagf_error(path):
            if resampler is not None:
                chunks.extend(_s16_samples(r) for r in resampler.resample(None))  # flush the resampler's buffer
            info = VideoInfo(
                fps=fps,
                frame_count=packet_count,
                container_frames=int(video.frames or 0),
                has_audio=audio is not None,
                width=int(video.codec_context.width),
                height=int(video.codec_context.height),
            )
    if info.container_frames and info.container_frames != info.frame_count:
        log.warning(
            "%s: container header says %d frames but demuxing found %d (truncated or unusual file?)",
            path,
            info.container_frames,
            info.frame_count,
        )
    if frame_sink is not None and decoded != packet_count:
        log.warning("%s: %d video packets decoded to %d frames", path, packet_count, decoded)
    waveform = (
        (np.concatenate(chunks).astype(np.float32) / np.float32(_INT16_SCALE))
        if chunks
        else np.zeros(0, dtype=np.float32)
    )
    return DecodedVideo(
        path=path, info=info, audio=waveform, decoded_frames=decoded if frame_sink is not None else None
    )


def _rgb(frame: av.VideoFrame) -> RgbFrame:
    # swscale converts from the codec's pixel format (yuv420p, …); rgb24 gives packed H×W×3
    return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


def _s16_samples(frame: av.AudioFrame) -> npt.NDArray[np.int16]:
    # packed s16 mono: to_ndarray gives 1×N
    return np.asarray(frame.to_ndarray(), dtype=np.int16).reshape(-1)


def probe_video(path: Path) -> VideoInfo:
    """Frame rate, exact frame count (by demuxing, no decoding), audio presence and size of a video.

    Raises:
        TagfError: the file is missing or unreadable.
    """
    return read_video(path, want_audio=False).info


def decode_audio_16k_mono(path: Path) -> npt.NDArray[np.float32]:
    """The video's audio as a 16 kHz mono float32 (N,) waveform in [−1, 1]; empty if it has no audio track.

    Raises:
        TagfError: the file is missing or unreadable.
    """
    return read_video(path, want_audio=True).audio


def iter_video_frames(path: Path) -> Iterator[RgbFrame]:
    """Yield every frame of the video's first video stream, in display order, as uint8 H×W×3 RGB.

    Raises:
        TagfError: the file is missing or unreadable (possibly after some frames were yielded).
    """
    path = Path(path)
    container = _open(path)
    with container:
        with _unreadable_as_tagf_error(path):
            if not container.streams.video:
                raise TagfError(f"{path}: has no video stream")
            video = container.streams.video[0]
            video.thread_type = "AUTO"
            frames = container.decode(video)
        while True:
            with _unreadable_as_tagf_error(path):
                frame = next(frames, None)
                if frame is None:
                    return
                rgb = _rgb(frame)
            yield rgb
