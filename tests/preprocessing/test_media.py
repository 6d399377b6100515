"""PyAV reading on tiny videos written in tmp_path: rate, counted frames, 16 kHz mono audio, RGB frames."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from preprocessing.media import (
    decode_audio_16k_mono,
    iter_video_frames,
    probe_video,
    read_video,
)
from tagf_core.errors import TagfError

WIDTH, HEIGHT = 64, 48


def frame_image(index: int) -> np.ndarray:
    """Frame i: red background with a green bar 4·i px wide, so frames are told apart after decoding."""
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[..., 0] = 200
    image[:, : 4 * index, 1] = 160
    return image


def write_video(
    path: Path,
    frames: int = 12,
    rate: int | Fraction = 30,
    video_codec: str = "mpeg4",
    audio: np.ndarray | None = None,
    audio_codec: str = "aac",
    audio_rate: int = 44100,
) -> Path:
    """Write a small video; ``audio`` is int16 samples × channels (1 or 2) or None for no audio stream."""
    container = av.open(str(path), "w")
    video = container.add_stream(video_codec, rate=rate)
    assert isinstance(video, av.VideoStream)
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    if video_codec == "mpeg4":
        video.codec_context.qmax = 2  # near-lossless, so colours survive for the RGB check
    sound: av.AudioStream | None = None
    if audio is not None:
        layout = "mono" if audio.shape[1] == 1 else "stereo"
        added = container.add_stream(audio_codec, rate=audio_rate, layout=layout)
        assert isinstance(added, av.AudioStream)
        sound = added
    for i in range(frames):
        for packet in video.encode(av.VideoFrame.from_ndarray(frame_image(i), format="rgb24")):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    if sound is not None and audio is not None:
        layout = "mono" if audio.shape[1] == 1 else "stereo"
        block = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio).reshape(1, -1), format="s16", layout=layout)
        block.sample_rate = audio_rate
        for packet in sound.encode(block):
            container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
    container.close()
    return path


def tone(rate: int, seconds: float, frequency: float, channels: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    samples = np.round(amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    return np.repeat(samples[:, None], channels, axis=1)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    pcm = np.random.default_rng(0).integers(-20000, 20000, (16000, 1)).astype(np.int16)
    paths = {
        "aac_stereo": write_video(folder / "a.mp4", audio=tone(44100, 1.0, 440.0, channels=2)),
        "pcm_16k": write_video(folder / "b.avi", audio=pcm, audio_codec="pcm_s16le", audio_rate=16000),
        "silent_ntsc": write_video(folder / "c.mp4", rate=Fraction(30000, 1001)),
        "h264": write_video(folder / "d.mp4", frames=20, video_codec="libx264", audio=tone(48000, 0.5, 1000.0, 1)),
        "mkv": write_video(folder / "e.mkv", frames=9, rate=25),
    }
    np.save(folder / "pcm.npy", pcm)
    return paths


def test_probe_reads_rate_counted_frames_audio_and_size(videos: dict[str, Path]) -> None:
    info = probe_video(videos["aac_stereo"])
    assert info.fps == 30.0
    assert info.frame_count == 12
    assert info.container_frames == 12
    assert info.has_audio
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert probe_video(videos["h264"]).frame_count == 20


def test_fractional_rate_and_no_audio(videos: dict[str, Path]) -> None:
    info = probe_video(videos["silent_ntsc"])
    assert info.fps == pytest.approx(30000 / 1001, rel=1e-12)
    assert not info.has_audio
    waveform = decode_audio_16k_mono(videos["silent_ntsc"])
    assert waveform.dtype == np.float32
    assert waveform.shape == (0,)


def test_frames_are_counted_when_the_container_does_not_say(videos: dict[str, Path]) -> None:
    # Matroska stores no frame count, so stream.frames is 0: counting packets still finds all 9
    info = probe_video(videos["mkv"])
    assert info.container_frames == 0
    assert info.frame_count == 9
    assert info.fps == 25.0


def test_16k_mono_pcm_comes_back_as_int16_over_32768_exactly(videos: dict[str, Path]) -> None:
    pcm = np.load(videos["pcm_16k"].parent / "pcm.npy")[:, 0]
    waveform = decode_audio_16k_mono(videos["pcm_16k"])
    assert waveform.dtype == np.float32
    np.testing.assert_array_equal(waveform, pcm.astype(np.float32) / 32768)


def test_stereo_44k_aac_is_downmixed_and_resampled_to_16k(videos: dict[str, Path]) -> None:
    waveform = decode_audio_16k_mono(videos["aac_stereo"])
    assert 16000 <= waveform.size <= 16000 + 2048  # 1 s of audio; the AAC encoder adds a little padding
    assert np.abs(waveform).max() <= 1.0
    middle = waveform[2000:14000]
    spectrum = np.abs(np.fft.rfft(middle))
    assert np.argmax(spectrum) * 16000 / middle.size == pytest.approx(440.0, abs=3.0)
    # identical channels at amplitude 0.5: the mono mix keeps the amplitude (mean, not sum)
    assert np.abs(middle).max() == pytest.approx(0.5, abs=0.05)


def test_iter_video_frames_yields_rgb_in_display_order(videos: dict[str, Path]) -> None:
    frames = list(iter_video_frames(videos["h264"]))
    assert len(frames) == 20
    assert all(f.shape == (HEIGHT, WIDTH, 3) and f.dtype == np.uint8 for f in frames)
    for i in (0, 5, 11):
        # RGB, not BGR: the background is red; the green bar has the width of frame i
        expected = frame_image(i).astype(int)
        assert np.abs(frames[i].astype(int) - expected).mean() < 6


def test_read_video_decodes_audio_and_frames_in_one_pass(videos: dict[str, Path]) -> None:
    seen: list[np.ndarray] = []
    result = read_video(videos["h264"], frame_sink=seen.append)
    assert result.info.frame_count == 20
    assert result.decoded_frames == 20
    assert len(seen) == 20
    np.testing.assert_array_equal(seen[7], list(iter_video_frames(videos["h264"]))[7])
    np.testing.assert_array_equal(result.audio, decode_audio_16k_mono(videos["h264"]))
    # 0.5 s at 16 kHz (not 24 000 samples at 48 kHz); the AAC encoder's padding adds a few frames
    assert 8000 <= result.audio.size <= 8000 + 2048

    counted_only = read_video(videos["h264"], want_audio=False)
    assert counted_only.decoded_frames is None
    assert counted_only.audio.size == 0
    assert counted_only.has_audio and counted_only.fps == 30.0 and counted_only.frame_count == 20
    later = list(counted_only.frames())  # the second, lazy pass decodes the same frames
    assert len(later) == 20
    np.testing.assert_array_equal(later[7], seen[7])


def test_an_error_in_the_frame_sink_is_not_reported_as_a_corrupt_video(videos: dict[str, Path]) -> None:
    def sink(frame: np.ndarray) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        read_video(videos["aac_stereo"], frame_sink=sink)


def test_corrupt_truncated_missing_and_audio_only_files(tmp_path: Path, videos: dict[str, Path]) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all " * 100)
    whole = videos["aac_stereo"].read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole[: len(whole) // 2])  # the mp4 index sits at the end: it is cut off
    for path in (garbage, truncated):
        for read in (probe_video, decode_audio_16k_mono, lambda p: list(iter_video_frames(p))):
            with pytest.raises(TagfError, match="corrupt or unreadable video") as error:
                read(path)
            assert str(error.value).startswith(str(path))
    with pytest.raises(TagfError, match="video file not found"):
        probe_video(tmp_path / "absent.mp4")

    audio_only = tmp_path / "sound.wav"
    container = av.open(str(audio_only), "w")
    stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
    block = av.AudioFrame.from_ndarray(np.zeros((1, 1600), dtype=np.int16), format="s16", layout="mono")
    block.sample_rate = 16000
    for packet in [*stream.encode(block), *stream.encode()]:
        container.mux(packet)
    container.close()
    with pytest.raises(TagfError, match="has no video stream"):
        probe_video(audio_only)
