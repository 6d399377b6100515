"""`video_arrays`: faces, log-mel patches and frame numbers of any video file, with no annotation or crops."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from preprocessing.logmel import log_mel_rows, patches_for_frames
from preprocessing.media import read_video
from preprocessing.single_video import video_arrays
from tagf_core.errors import TagfError
from tagf_synth import SynthReport


@pytest.fixture(scope="module")
def synth(synth_release: SynthReport) -> SynthReport:
    return synth_release


def _videos(synth: SynthReport, *, audio: bool) -> list[Path]:
    """The synthetic videos of one face each (a paired video shows two), with or without an audio track."""
    single = set(synth.train + synth.validate + synth.test)
    paths = [synth.out / "videos" / name for name in synth.videos if Path(name).stem in single]
    return [p for p in paths if read_video(p, want_audio=False).has_audio == audio]


def write_grey_video(path: Path, frames: int) -> None:
    """A faceless, silent MPEG-4 .avi of ``frames`` mid-grey 64×48 frames at 25 fps (0 frames: header only)."""
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.start_encoding()
    for _ in range(frames):
        image = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 128, dtype=np.uint8), format="rgb24")
        for packet in stream.encode(image):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def test_arrays_of_a_video_with_audio(synth: SynthReport) -> None:
    path = _videos(synth, audio=True)[0]
    arrays = video_arrays(path)
    video = read_video(path)
    length = video.frame_count
    assert arrays.length == length > 0
    assert arrays.faces.shape == (length, 48, 48, 3) and arrays.faces.dtype == np.uint8
    assert arrays.logmel.shape == (length, 96, 64) and arrays.logmel.dtype == np.float16
    assert arrays.frames.dtype == np.int32
    np.testing.assert_array_equal(arrays.frames, np.arange(length))
    np.testing.assert_array_equal(
        arrays.logmel, patches_for_frames(log_mel_rows(video.audio), np.arange(length), video.fps)
    )
    assert arrays.fps == video.fps
    assert arrays.has_audio and arrays.warnings == ()
    blank = ~arrays.faces.reshape(length, -1).any(axis=1)
    assert arrays.frames_without_face == int(blank.sum())
    assert arrays.frames_without_face < 0.2 * length  # the synthetic face hides for a moment only


def test_face_size_is_a_parameter(synth: SynthReport) -> None:
    arrays = video_arrays(_videos(synth, audio=True)[0], face_size=32)
    assert arrays.faces.shape[1:] == (32, 32, 3)


def test_a_silent_video_gets_silence_and_a_warning(synth: SynthReport) -> None:
    path = _videos(synth, audio=False)[0]
    arrays = video_arrays(path)
    assert not arrays.has_audio
    assert arrays.warnings == ("no audio track, using silence",)
    np.testing.assert_allclose(arrays.logmel.astype(np.float32), np.log(0.01), atol=1e-3)
    assert arrays.frames_without_face < 0.2 * arrays.length


def test_a_video_without_faces_is_a_warning_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "grey.avi"
    write_grey_video(path, 12)
    arrays = video_arrays(path)
    assert arrays.length == 12 and arrays.frames_without_face == 12
    assert not arrays.faces.any()
    assert arrays.warnings == (
        "no audio track, using silence",
        "no face found in any of the 12 frames (nothing to predict from)",
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage" * 50, "corrupt or unreadable video"),
        (None, "video file not found"),
        ("empty", "the video stream holds no frames"),
    ],
)
def test_bad_files_are_one_line_naming_the_file(tmp_path: Path, content: bytes | str | None, message: str) -> None:
    path = tmp_path / "clip.avi"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "empty":
        write_grey_video(path, 0)
    with pytest.raises(TagfError, match=message) as error:
        video_arrays(path)
    assert str(error.value).startswith(f"{path}: ")
    assert "\n" not in str(error.value)
