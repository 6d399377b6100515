"""File and folder names of the official Aff-Wild2 valence–arousal release, plus the synth-only extras.

OUT/
  Annotations/VA_Estimation_Challenge/Train_Set/<trial>.txt        "valence,arousal" + one row per frame
  Annotations/VA_Estimation_Challenge/Validation_Set/<trial>.txt
  cropped_aligned/<trial>/00001.jpg ...                           112×112 faces, 1-based frame numbers
  videos/<video>.mp4 | .avi                                       <trial> = <video> or <video>_left/_right
  Valence_Arousal_Estimation_Challenge_test_set_release.txt       test trial names, one per line
  ICCV_9th_ABAW_VA_test_set_sample.txt                            sample submission of the organisers
  synth_ground_truth/<trial>.txt      synth only: the test trials' labels, in the annotation format
  synth.json                          synth only: what was generated, from which arguments
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Partition = Literal["train", "validate", "test"]
PARTITIONS: tuple[Partition, ...] = ("train", "validate", "test")

ANNOTATION_ROOT = Path("Annotations") / "VA_Estimation_Challenge"
ANNOTATION_SET_FOLDER: dict[Partition, str] = {"train": "Train_Set", "validate": "Validation_Set"}
CROPS_FOLDER = "cropped_aligned"
VIDEOS_FOLDER = "videos"
TEST_SET_LIST = "Valence_Arousal_Estimation_Challenge_test_set_release.txt"
SAMPLE_SUBMISSION = "ICCV_9th_ABAW_VA_test_set_sample.txt"
SAMPLE_SUBMISSION_HEADER = "image_location,valence,arousal"
GROUND_TRUTH_FOLDER = "synth_ground_truth"
DESCRIPTION_FILE = "synth.json"

CROP_SIZE = 112
CROP_DIGITS = 5


def annotation_path(root: Path, partition: Partition, trial: str) -> Path:
    """Where a labelled trial's annotation file goes; test trials have none (see ``ground_truth_path``)."""
    if partition not in ANNOTATION_SET_FOLDER:
        raise ValueError(f"partition {partition!r} has no annotation folder")
    return root / ANNOTATION_ROOT / ANNOTATION_SET_FOLDER[partition] / f"{trial}.txt"


def ground_truth_path(root: Path, trial: str) -> Path:
    return root / GROUND_TRUTH_FOLDER / f"{trial}.txt"


def crops_folder(root: Path, trial: str) -> Path:
    return root / CROPS_FOLDER / trial


def crop_file_name(frame_index: int) -> str:
    """``0`` → ``00001.jpg``: crops are numbered from 1, like the video frames they come from."""
    return f"{frame_index + 1:0{CROP_DIGITS}d}.jpg"


def video_path(root: Path, video_file: str) -> Path:
    return root / VIDEOS_FOLDER / video_file


def sample_submission_row(trial: str, frame_index: int, valence: float = 0.0, arousal: float = 0.0) -> str:
    return f"{trial}/{crop_file_name(frame_index)},{valence:g},{arousal:g}"
