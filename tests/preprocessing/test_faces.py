"""Face crops: Pillow-exact bicubic resize, frame-aligned organiser crops, and the Haar fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocessing.faces import (
    HaarFaceCollector,
    crop_largest_face,
    detect_faces,
    fit_to_frame_count,
    load_cropped_faces,
    resize_bicubic,
)
from tagf_core.errors import TagfError

# ---------------------------------------------------------------------------------------------------------
# resize


@pytest.mark.parametrize("shape", [(112, 112, 3), (100, 130, 3), (40, 40, 3), (30, 20, 3)])
def test_resize_equals_pillow_bicubic(shape: tuple[int, int, int]) -> None:
    from PIL import Image as image_module  # a dev dependency: this test must not skip silently

    rng = np.random.default_rng(sum(shape))
    image = np.asarray(cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (3, 3), 1.0), dtype=np.uint8)
    image[: shape[0] // 3] = rng.integers(0, 256, (shape[0] // 3, shape[1], 3), dtype=np.uint8)  # some sharp noise
    expected = np.asarray(image_module.fromarray(image).resize((48, 48), image_module.Resampling.BICUBIC))
    np.testing.assert_array_equal(resize_bicubic(image, 48), expected)


def test_resize_keeps_constants_and_identity() -> None:
    constant = np.full((112, 112, 3), 173, dtype=np.uint8)
    np.testing.assert_array_equal(resize_bicubic(constant, 48), np.full((48, 48, 3), 173, dtype=np.uint8))
    image = np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_bicubic(image, 48), image)
    assert resize_bicubic(image[None], 20).shape == (1, 20, 20, 3)


def test_resize_antialiases_where_cv2_inter_cubic_aliases() -> None:
    # a 1-px checkerboard shrunk 112→48 should become flat grey, as Pillow makes it; plain cubic
    # interpolation (cv2.INTER_CUBIC) samples the pattern and leaves strong aliasing
    checker = ((np.indices((112, 112)).sum(axis=0) % 2) * 255).astype(np.uint8)
    image = np.repeat(checker[..., None], 3, axis=2)
    ours = resize_bicubic(image, 48).astype(float)
    theirs = cv2.resize(image, (48, 48), interpolation=cv2.INTER_CUBIC).astype(float)
    assert ours[4:-4, 4:-4].std() < 12
    assert theirs[4:-4, 4:-4].std() > 3 * ours[4:-4, 4:-4].std()


# ---------------------------------------------------------------------------------------------------------
# organiser crops


def grey_of_file(number: int) -> int:
    return 20 + 30 * number  # file 00001.jpg is grey 50, 00002.jpg grey 80, …


def write_crops(folder: Path, numbers: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        image = np.full((112, 112, 3), grey_of_file(number), dtype=np.uint8)
        assert cv2.imwrite(str(folder / f"{number:05d}.jpg"), image)


def test_kept_frame_k_reads_file_k_plus_1_and_missing_files_are_black(tmp_path: Path) -> None:
    folder = tmp_path / "crops"
    write_crops(folder, [1, 2, 3, 5, 6])  # 00004.jpg missing: no face in frame 3
    # frame 1 is unannotated (-5): reading files in sequence, as the reference did, would give 1, 2, 3, 4
    faces, missing = load_cropped_faces(folder, np.array([0, 2, 3, 5]))
    assert faces.shape == (4, 48, 48, 3)
    assert faces.dtype == np.uint8
    assert missing == 1
    means = faces.reshape(4, -1).mean(axis=1)
    assert means == pytest.approx([grey_of_file(1), grey_of_file(3), 0, grey_of_file(6)], abs=2)


def test_corrupt_and_truncated_jpegs_count_as_missing_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "crops"
    write_crops(folder, [1, 2])
    (folder / "00003.jpg").write_bytes(b"\xff\xd8 this is not image data \xff\xd9")
    whole = (folder / "00002.jpg").read_bytes()
    (folder / "00002.jpg").write_bytes(whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING, logger="preprocessing.faces"):
        faces, missing = load_cropped_faces(folder, np.arange(3))
    assert missing == 2
    assert not faces[1:].any()
    assert faces[0].mean() == pytest.approx(grey_of_file(1), abs=2)
    assert [r.getMessage() for r in caplog.records] == [
        f"{folder}: 2 of the 3 kept frames' crops are corrupt or unreadable, the first 00002.jpg: truncated or not "
        "a JPEG (no end-of-image marker); black frames used instead"
    ]


def test_a_trial_whose_every_crop_is_corrupt_fails_in_one_line_without_a_warning_per_frame(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "crops"
    folder.mkdir()
    for number in range(1, 41):
        (folder / f"{number:05d}.jpg").write_bytes(b"\xff\xd8 this is not image data \xff\xd9")
    with caplog.at_level(logging.WARNING, logger="preprocessing.faces"), pytest.raises(TagfError) as failed:
        load_cropped_faces(folder, np.arange(40))
    assert str(failed.value) == (
        f"{folder}: none of the 40 kept frames has a readable crop "
        "(40 of the 40 kept frames' crops are corrupt or unreadable, the first 00001.jpg: corrupt JPEG)"
    )
    assert caplog.records == []


def test_frames_past_the_last_file_are_missing(tmp_path: Path) -> None:
    folder = tmp_path / "crops"
    write_crops(folder, [1])
    faces, missing = load_cropped_faces(folder, np.array([0, 1, 2]), size=32)
    assert faces.shape == (3, 32, 32, 3)
    assert missing == 2


def test_empty_or_absent_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no faces here")
    with pytest.raises(TagfError, match="holds no .jpg") as error:
        load_cropped_faces(tmp_path / "empty", np.arange(3))
    assert str(error.value).startswith(str(tmp_path / "empty"))
    with pytest.raises(TagfError, match="not found"):
        load_cropped_faces(tmp_path / "absent", np.arange(3))


# ---------------------------------------------------------------------------------------------------------
# Haar fallback


def draw_face(image: np.ndarray, centre: tuple[int, int], scale: float, skin: tuple[int, int, int]) -> None:
    """A schematic face (skin ellipse, dark eyes and brows, nose, mouth) that OpenCV's cascade detects."""
    cx, cy = centre

    def s(value: float) -> int:
        return int(value * scale)

    cv2.ellipse(image, (cx, cy), (s(60), s(80)), 0, 0, 360, skin, -1)
    for dx in (-25, 25):
        cv2.ellipse(image, (cx + s(dx), cy - s(20)), (s(13), s(7)), 0, 0, 360, (40, 30, 30), -1)
        cv2.line(image, (cx + s(dx) - s(15), cy - s(38)), (cx + s(dx) + s(15), cy - s(38)), (50, 40, 40), s(4))
    cv2.line(image, (cx, cy - s(10)), (cx, cy + s(20)), (150, 120, 110), s(4))
    cv2.ellipse(image, (cx, cy + s(40)), (s(22), s(8)), 0, 0, 360, (120, 50, 50), -1)


def scene(
    faces: list[tuple[tuple[int, int], float, tuple[int, int, int]]], size: tuple[int, int] = (240, 480)
) -> np.ndarray:
    image = np.full((*size, 3), 60, dtype=np.uint8)
    for centre, scale, skin in faces:
        draw_face(image, centre, scale, skin)
    return cv2.GaussianBlur(image, (0, 0), 3)


WARM_SKIN = (200, 170, 150)
GREEN_SKIN = (140, 200, 140)


def test_largest_face_is_cropped_square_and_resized() -> None:
    frame = scene([((120, 120), 1.0, WARM_SKIN), ((360, 120), 0.6, GREEN_SKIN)])
    face = crop_largest_face(frame)
    assert face is not None
    assert face.shape == (48, 48, 3)
    centre = face[16:32, 12:36].reshape(-1, 3).mean(axis=0)  # cheeks and nose of the face found
    assert centre[0] > centre[1]  # the warm (large) face, not the green (small) one


def test_blank_frame_has_no_face() -> None:
    assert crop_largest_face(np.full((240, 320, 3), 90, dtype=np.uint8)) is None


def test_detect_faces_keeps_only_kept_frames_and_counts_missing() -> None:
    blank = np.full((240, 480, 3), 60, dtype=np.uint8)
    with_face = scene([((240, 120), 1.0, WARM_SKIN)])
    frames = [blank, with_face, blank, with_face]
    faces, missing = detect_faces(iter(frames), np.array([1, 2, 3, 7]))  # frame 7 is past the end
    assert faces.shape == (4, 48, 48, 3)
    assert missing == 2
    assert faces[0].any() and faces[2].any()
    assert not faces[1].any() and not faces[3].any()
    np.testing.assert_array_equal(faces[0], faces[2])


def test_collector_without_kept_frames_keeps_every_frame() -> None:
    collector = HaarFaceCollector(None, size=40)
    for frame in (scene([((240, 120), 1.0, WARM_SKIN)]), np.zeros((240, 480, 3), dtype=np.uint8)):
        collector(frame)
    faces, missing = collector.result()
    assert faces.shape == (2, 40, 40, 3)
    assert missing == 1
    assert faces[0].any() and not faces[1].any()


def test_faces_are_fitted_to_the_demuxed_frame_count() -> None:
    faces = np.zeros((4, 8, 8, 3), dtype=np.uint8)  # rows 0 and 2 hold a face, 1 and 3 are black
    faces[0], faces[2] = 10, 20
    padded, missing = fit_to_frame_count(faces, 2, 6)
    assert padded.shape == (6, 8, 8, 3) and missing == 4  # two black rows appended
    np.testing.assert_array_equal(padded[:4], faces)
    assert not padded[4:].any()
    cut, missing = fit_to_frame_count(faces, 2, 3)
    np.testing.assert_array_equal(cut, faces[:3])
    assert missing == 1  # the dropped row 3 was black
    same, missing = fit_to_frame_count(faces, 2, 4)
    np.testing.assert_array_equal(same, faces)
    assert missing == 2


def test_face_at_the_border_is_padded_black() -> None:
    frame = scene([((70, 120), 1.0, WARM_SKIN)], size=(240, 320))  # box + margin runs past the left edge
    face = crop_largest_face(frame)
    assert face is not None
    assert not face[:, 0].any()  # the column left of the frame is black
    assert face[:, 24].any()
