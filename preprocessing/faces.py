"""Face crops for every kept frame: the organisers' cropped_aligned JPEGs, or a Haar-cascade fallback.

Output: uint8 T×48×48×3 RGB, row k is the face of kept frame ``kept_frames[k]``, black where there is no
face. Resizing reproduces Pillow's ``Image.resize(..., BICUBIC)`` bit for bit (see ``resize_bicubic``),
because the reference resized the crops with PIL (ref §2.2 step 2) and Pillow's bicubic is an
antialiasing filter when it shrinks, which ``cv2.INTER_CUBIC`` is not (on a smooth 112→48 px test image they
differ by 2.5 grey levels on average, up to 13). The numpy re-implementation avoids a Pillow dependency; OpenCV
decodes the JPEGs (libjpeg-turbo, like Pillow).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from contextlib import AbstractContextManager
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from tagf_core.data.layout import FACE_SIZE
from tagf_core.errors import TagfError

log = logging.getLogger(__name__)

FaceArray = npt.NDArray[np.uint8]
"""uint8 T×size×size×3, RGB."""

CROP_NAME = "{:05d}.jpg"  # ref §2.1: cropped_aligned/<trial>/00001.jpg is video frame 0
HAAR_MARGIN = 0.1  # widen the detected box by 10 % on each side so the chin and forehead stay in
HAAR_DETECT_MAX_SIDE = 640  # detect on a copy no larger than this: same faces, far less time on HD frames
HAAR_MIN_FACE = 24  # px on the detection copy

# ---------------------------------------------------------------------------------------------------------
# Pillow-exact bicubic resize


_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit images (Resample.c)


def _bicubic_kernel(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Pillow's bicubic: Keys kernel with a = −0.5, support 2
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@cache
def _resample_matrix(in_size: int, out_size: int) -> npt.NDArray[np.float64]:
    """Pillow's integer resampling coefficients as a dense out_size×in_size matrix (in units of 2^-22)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)  # shrinking widens the kernel: this is the antialiasing
    support = 2.0 * filterscale
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    for out in range(out_size):
        centre = (out + 0.5) * scale
        # C's (int) truncates toward zero; the clamp to [0, in_size] follows it as in Resample.c
        first = max(int(centre - support + 0.5), 0)
        stop = min(int(centre + support + 0.5), in_size)
        taps = np.arange(first, stop, dtype=np.float64)
        weights = _bicubic_kernel((taps - centre + 0.5) / filterscale)
        total = weights.sum()
        if total != 0.0:
            weights = weights / total
        # normalize_coeffs_8bpc: round half away from zero to 22-bit fixed point
        fixed = np.trunc(weights * (1 << _PRECISION_BITS) + np.where(weights < 0, -0.5, 0.5))
        matrix[out, first:stop] = fixed
    matrix.setflags(write=False)
    return matrix


def _apply_fixed_point(
    images: npt.NDArray[np.float64], matrix: npt.NDArray[np.float64], axis: int
) -> npt.NDArray[np.float64]:
    # products of 8-bit values and 22-bit integers sum exactly in float64 (< 2^53), so this is Pillow's
    # integer arithmetic: add half, shift right (floor), clip to 0..255
    summed = np.moveaxis(np.tensordot(images, matrix, axes=([axis], [1])), -1, axis)
    return np.clip(np.floor((summed + (1 << (_PRECISION_BITS - 1))) / (1 << _PRECISION_BITS)), 0, 255)


def one_blas_thread() -> AbstractContextManager[object]:
    """Hold BLAS to one thread in a block of face resizes: each is a tiny float64 matrix product where threads
    only cost time (a pool worker per core plus BLAS threads per worker oversubscribes the cores). The sums are
    exact integers, so the thread count cannot change a pixel. Enter it once per trial: entering costs ~1 ms."""
    return threadpool_limits(limits=1, user_api="blas")


def resize_bicubic(images: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.uint8]:
    """Resize to size×size exactly as Pillow's ``Image.resize((size, size), Image.BICUBIC)`` does.

    ``images``: uint8 H×W×3 or N×H×W×3 → uint8 size×size×3 or N×size×size×3. Horizontal pass first, then
    vertical, each rounded and clipped to 8 bits, a pass skipped when its dimension is unchanged — all
    as in Pillow's Resample.c up to Pillow 12 (the reference pinned 10.4). Pillow 13 runs the vertical
    pass first when the height shrinks much more than the width; for square inputs such as the
    organisers' 112×112 crops both orders are the same.
    """
    single = images.ndim == 3
    batch = images[None] if single else images  # N×H×W×3
    height, width = batch.shape[1], batch.shape[2]
    result = batch.astype(np.float64)
    if width != size:
        result = _apply_fixed_point(result, _resample_matrix(width, size), axis=2)  # N×H×size×3
    if height != size:
        result = _apply_fixed_point(result, _resample_matrix(height, size), axis=1)  # N×size×size×3
    out = result.astype(np.uint8)
    return out[0] if single else out


# ---------------------------------------------------------------------------------------------------------
# organiser crops


def _read_jpeg_rgb(path: Path) -> tuple[npt.NDArray[np.uint8] | None, str]:
    """Decode a JPEG → (uint8 H×W×3 RGB, ""), or (None, what is wrong) when it is unreadable, corrupt or truncated."""
    try:
        data = path.read_bytes()
    except OSError as e:
        return None, f"unreadable ({e.strerror or e})"
    # libjpeg decodes a truncated file without complaint (grey bottom), so require the end-of-image marker
    if b"\xff\xd9" not in data[-64:]:
        return None, "truncated or not a JPEG (no end-of-image marker)"
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        return None, "corrupt JPEG"
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8), ""


def load_cropped_faces(folder: Path, kept_frames: npt.ArrayLike, size: int = FACE_SIZE) -> tuple[FaceArray, int]:
    """The organisers' face crops of the kept frames, resized: → (uint8 T×size×size×3 RGB, missing).

    Kept frame k (0-based video frame) is ``folder / f"{k + 1:05d}.jpg"``. This fixes the reference,
    which read 00001…T in sequence and so shifted faces against labels after any −5 row (ref §2.2, §8).
    A missing, unreadable or corrupt file gives a black frame and counts in ``missing``; the unreadable and
    corrupt ones are logged as one warning per trial (their number and the first of them).

    Raises:
        TagfError: ``folder`` does not exist or holds no .jpg at all, or no kept frame has a readable crop.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TagfError(f"{folder}: face crop folder not found")
    if next(folder.glob("*.jpg"), None) is None:
        raise TagfError(f"{folder}: face crop folder holds no .jpg file")
    frames = np.asarray(kept_frames, dtype=np.int64).reshape(-1)
    faces = np.zeros((frames.size, size, size, 3), dtype=np.uint8)  # T×size×size×3, black by default
    missing, bad, first_bad = 0, 0, ""
    for row, frame in enumerate(frames):
        path = folder / CROP_NAME.format(int(frame) + 1)
        image, problem = _read_jpeg_rgb(path) if path.is_file() else (None, "")
        if image is None:
            missing += 1
            if problem:
                bad += 1
                first_bad = first_bad or f"{path.name}: {problem}"
            continue
        faces[row] = resize_bicubic(image, size)
    bad_crops = f"{bad} of the {frames.size} kept frames' crops are corrupt or unreadable, the first {first_bad}"
    if frames.size and missing == frames.size:
        # every face black would train silently on nothing: the crops are damaged, or named differently
        first = int(frames[0])
        why = bad_crops if bad else f"expected files named like {CROP_NAME.format(first + 1)} for video frame {first}"
        raise TagfError(f"{folder}: none of the {frames.size} kept frames has a readable crop ({why})")
    if bad:
        log.warning("%s: %s; black frames used instead", folder, bad_crops)
    return faces, missing


# ---------------------------------------------------------------------------------------------------------
# Haar-cascade fallback


@cache
def _haar_cascade() -> cv2.CascadeClassifier:
    """OpenCV's frontal-face cascade, loaded once per process."""
    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise TagfError(f"{path}: cannot load OpenCV's Haar face cascade (broken OpenCV install?)")
    return cascade


def crop_largest_face(frame: npt.NDArray[np.uint8], size: int = FACE_SIZE) -> npt.NDArray[np.uint8] | None:
    """Detect faces in one uint8 H×W×3 RGB frame; the largest one as a square size×size×3 crop, or None.

    The detected box is widened by 10 % per side and made square around its centre; parts outside the
    frame are black. Detection runs on a grey copy scaled to at most 640 px per side.
    """
    height, width = frame.shape[:2]
    shrink = min(1.0, HAAR_DETECT_MAX_SIDE / max(height, width))
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if shrink < 1.0:
        grey = cv2.resize(grey, (round(width * shrink), round(height * shrink)), interpolation=cv2.INTER_AREA)
    boxes = _haar_cascade().detectMultiScale(
        grey, scaleFactor=1.1, minNeighbors=5, minSize=(HAAR_MIN_FACE, HAAR_MIN_FACE)
    )
    if len(boxes) == 0:
        return None
    x, y, w, h = (float(v) / shrink for v in max(boxes, key=lambda b: int(b[2]) * int(b[3])))
    side = max(w, h) * (1.0 + 2.0 * HAAR_MARGIN)
    left = int(math.floor(x + w / 2 - side / 2))
    top = int(math.floor(y + h / 2 - side / 2))
    side_px = max(1, int(round(side)))
    square = np.zeros((side_px, side_px, 3), dtype=np.uint8)  # black outside the frame
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + side_px, height), min(left + side_px, width)
    if src_bottom > src_top and src_right > src_left:
        square[src_top - top : src_bottom - top, src_left - left : src_right - left] = frame[
            src_top:src_bottom, src_left:src_right
        ]
    return resize_bicubic(square, size)


class HaarFaceCollector:
    """Streaming Haar fallback: feed it every video frame in order, keep only the kept frames' faces.

    Usable as ``read_video(..., frame_sink=collector)`` so faces are found in the same pass that reads
    the audio. Memory is the output plus one frame. ``kept_frames=None`` keeps every frame (unlabelled
    trials, whose length is only known at the end).
    """

    def __init__(self, kept_frames: npt.ArrayLike | None, size: int = FACE_SIZE) -> None:
        self.size = size
        self._next_index = 0
        self._missing = 0
        if kept_frames is None:
            self._rows: dict[int, int] | None = None
            self._faces: list[npt.NDArray[np.uint8]] = []
            self._fixed: FaceArray | None = None
        else:
            frames = np.asarray(kept_frames, dtype=np.int64).reshape(-1)
            self._rows = {int(frame): row for row, frame in enumerate(frames)}
            self._fixed = np.zeros((frames.size, size, size, 3), dtype=np.uint8)  # T×size×size×3
            self._found = np.zeros(frames.size, dtype=bool)

    def __call__(self, frame: npt.NDArray[np.uint8]) -> None:
        """Take the next video frame (uint8 H×W×3 RGB)."""
        index = self._next_index
        self._next_index += 1
        if self._rows is None:
            face = crop_largest_face(frame, self.size)
            if face is None:
                self._missing += 1
                face = np.zeros((self.size, self.size, 3), dtype=np.uint8)
            self._faces.append(face)
            return
        row = self._rows.get(index)
        if row is None:
            return
        face = crop_largest_face(frame, self.size)
        if face is not None:
            assert self._fixed is not None
            self._fixed[row] = face
            self._found[row] = True

    def result(self) -> tuple[FaceArray, int]:
        """(uint8 T×size×size×3 RGB, number of kept frames without a detected face or past the video's end)."""
        if self._rows is None:
            if not self._faces:
                return np.zeros((0, self.size, self.size, 3), dtype=np.uint8), 0
            return np.stack(self._faces), self._missing
        assert self._fixed is not None
        return self._fixed, int((~self._found).sum())


def fit_to_frame_count(faces: FaceArray, missing: int, frame_count: int) -> tuple[FaceArray, int]:
    """Faces of every decoded frame → exactly one row per demuxed frame: (uint8 frame_count×size×size×3, missing).

    Decoding can give a frame or two more or fewer than demuxing counted packets, and the packet count is T:
    missing rows are appended black and counted in ``missing``; extra rows are dropped, and the black ones
    among them leave the count.
    """
    if len(faces) == frame_count:
        return faces, missing
    if len(faces) < frame_count:
        black = np.zeros((frame_count - len(faces), *faces.shape[1:]), dtype=np.uint8)
        return np.concatenate([faces, black]), missing + len(black)
    dropped = faces[frame_count:]  # N×size×size×3, N ≥ 1
    dropped_black = int((~dropped.reshape(len(dropped), -1).any(axis=1)).sum())
    return faces[:frame_count], missing - dropped_black


def detect_faces(
    frames: Iterable[npt.NDArray[np.uint8]], kept_frames: npt.ArrayLike | None, size: int = FACE_SIZE
) -> tuple[FaceArray, int]:
    """Haar-cascade faces of the kept frames: all video frames (uint8 H×W×3 RGB, in order) → (T×size×size×3, missing).

    ``frames`` is consumed as a stream (e.g. ``iter_video_frames(path)``); only kept frames are searched.
    Kept frames past the end of the stream stay black and count as missing.
    """
    collector = HaarFaceCollector(kept_frames, size)
    for frame in frames:
        collector(frame)
    return collector.result()
