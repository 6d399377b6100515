from __future__ import annotations

import numpy as np
import pytest
import torch

from tagf_core.data.transforms import CropFlip, centre_crop, sample_crop_flip, transform_video


def position_frames(num_frames: int = 6, face_size: int = 48) -> np.ndarray:
    """L×48×48×3 uint8 whose pixel (t, r, c) holds (r, c, t): each output pixel says where it came from."""
    t, r, c = np.meshgrid(np.arange(num_frames), np.arange(face_size), np.arange(face_size), indexing="ij")
    return np.stack([r, c, t], axis=-1).astype(np.uint8)


def unnormalise(video: torch.Tensor) -> np.ndarray:
    """L×3×h×w in [−1, 1] → L×h×w×3 uint8, the inverse of /255 then (x − 0.5)/0.5."""
    return np.rint((video.numpy() * 0.5 + 0.5) * 255).astype(np.uint8).transpose(0, 2, 3, 1)


def read_crop(video: torch.Tensor, crop_size: int = 40) -> CropFlip:
    """Recover the one crop and flip used for a whole window, checking that every frame agrees."""
    pixels = unnormalise(video)
    num_frames = pixels.shape[0]
    assert (pixels[..., 2] == np.arange(num_frames)[:, None, None]).all()  # frames stay in order
    rows, cols = pixels[..., 0].astype(int), pixels[..., 1].astype(int)
    assert (rows == rows[0]).all() and (cols == cols[0]).all(), "frames of one window were cropped differently"
    top, flip = int(rows[0, 0, 0]), bool(cols[0, 0, 0] > cols[0, 0, -1])
    left = int(cols[0, 0, -1]) if flip else int(cols[0, 0, 0])
    expected_cols = left + np.arange(crop_size)
    np.testing.assert_array_equal(rows[0], np.broadcast_to((top + np.arange(crop_size))[:, None], rows[0].shape))
    np.testing.assert_array_equal(
        cols[0], np.broadcast_to(expected_cols[::-1] if flip else expected_cols, cols[0].shape)
    )
    return CropFlip(top=top, left=left, flip=flip)


def test_one_crop_and_flip_per_window_covering_every_offset() -> None:
    frames = position_frames()
    crops = [
        read_crop(transform_video(frames, train=True, crop_size=40, generator=torch.Generator().manual_seed(s)))
        for s in range(300)
    ]
    # offsets are uniform on [0, 8] inclusive (ref §2.6): all nine values appear in 300 draws
    assert {c.top for c in crops} == set(range(9))
    assert {c.left for c in crops} == set(range(9))
    assert {c.flip for c in crops} == {False, True}
    assert 0.35 < np.mean([c.flip for c in crops]) < 0.65


def test_eval_is_an_exact_centre_crop() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (5, 48, 48, 3), dtype=np.uint8)
    video = transform_video(frames, train=False, crop_size=40)
    expected = (torch.from_numpy(frames[:, 4:44, 4:44]).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    assert video.shape == (5, 3, 40, 40)
    assert video.dtype == torch.float32
    torch.testing.assert_close(video, expected, rtol=0, atol=0)
    assert read_crop(transform_video(position_frames(), train=False, crop_size=40)) == CropFlip(
        top=4, left=4, flip=False
    )


def test_values_span_minus_one_to_one() -> None:
    frames = np.random.default_rng(1).integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    frames[0] = 0  # a padded (black) frame
    frames[1] = 255
    video = transform_video(frames, train=True, crop_size=40, generator=torch.Generator().manual_seed(0))
    assert video.dtype == torch.float32
    assert video.min() >= -1 and video.max() <= 1
    assert (video[0] == -1).all()
    assert (video[1] == 1).all()


def test_seeded_training_crops_are_reproducible() -> None:
    frames = position_frames()

    def run(seed: int) -> torch.Tensor:
        return transform_video(frames, train=True, crop_size=40, generator=torch.Generator().manual_seed(seed))

    torch.testing.assert_close(run(3), run(3), rtol=0, atol=0)
    assert any(not torch.equal(run(3), run(s)) for s in range(4, 8))


def test_global_rng_is_used_without_a_generator() -> None:
    frames = position_frames()
    torch.manual_seed(11)
    first = [read_crop(transform_video(frames, train=True, crop_size=40)) for _ in range(8)]
    torch.manual_seed(11)
    again = [read_crop(transform_video(frames, train=True, crop_size=40)) for _ in range(8)]
    assert first == again
    assert len(set(first)) > 1


def test_crop_and_face_size_are_parameters() -> None:
    frames = position_frames(num_frames=3, face_size=36)
    video = transform_video(frames, train=False, crop_size=31, face_size=36)
    assert video.shape == (3, 3, 31, 31)
    assert read_crop(video, crop_size=31) == CropFlip(top=2, left=2, flip=False)  # round(5 / 2) = 2, as torchvision
    assert centre_crop(crop_size=32, face_size=48) == CropFlip(top=8, left=8, flip=False)
    draws = [sample_crop_flip(crop_size=44, generator=torch.Generator().manual_seed(s)) for s in range(100)]
    assert {d.top for d in draws} == set(range(5))
    with pytest.raises(ValueError, match="crop_size 50"):
        sample_crop_flip(crop_size=50)
    with pytest.raises(ValueError, match="expected L×48×48×3"):
        transform_video(frames, train=False, crop_size=40)
