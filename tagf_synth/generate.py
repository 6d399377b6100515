"""``generate_dataset``: check the arguments, render every video with its crops, labels and lists, publish.

Randomness: every video draws from its own generators, seeded by (seed, video number, purpose), so a
video's content does not depend on how many trials follow it, and each purpose (room, people, voices,
pixel noise) has its own stream.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tagf_core.errors import TagfError
from tagf_synth.description import WrittenVideo, description_json
from tagf_synth.labels import annotation_text
from tagf_synth.layout import (
    DESCRIPTION_FILE,
    SAMPLE_SUBMISSION,
    SAMPLE_SUBMISSION_HEADER,
    TEST_SET_LIST,
    annotation_path,
    crop_file_name,
    crops_folder,
    ground_truth_path,
    sample_submission_row,
    video_path,
)
from tagf_synth.media import VideoWriter
from tagf_synth.output import check_destination, staged_output
from tagf_synth.person import Person, random_person
from tagf_synth.plan import VideoPlan, plan_dataset
from tagf_synth.scene import crop_view, random_scene, render_crop, render_frame
from tagf_synth.voice import SAMPLE_RATE, room_noise, samples_for_frames, synthesize_voice

logger = logging.getLogger(__name__)

MIN_SECONDS = 2.0  # room for the -5 blocks at start, middle and end, a hidden-face block and a pause
MAX_SECONDS = 600.0  # a trial's audio is synthesised in memory: 10 minutes take about 1.5 GB at peak
MAX_TRIALS = 999
JPEG_QUALITY = 92
_CROPS_IN_FLIGHT = 64
_TWO_VOICE_GAIN = 0.6  # two people talking at once: keep the mix from clipping

# Purposes of the per-video random streams (see the module docstring).
_ROOM, _PEOPLE, _VOICES, _PIXEL_NOISE, _ROOM_NOISE = range(5)


@dataclass(frozen=True)
class SynthReport:
    """What ``generate_dataset`` wrote."""

    out: Path
    seed: int
    seconds: float
    train: list[str]
    validate: list[str]
    test: list[str]
    videos: list[str]
    """Video file names under ``OUT/videos``."""
    files: int
    """Number of files written under OUT."""


def generate_dataset(out: Path, *, trials: int = 8, seconds: float = 12.0, seed: int = 0) -> SynthReport:
    """Write a synthetic dataset in the Aff-Wild2 valence–arousal release layout to ``out``.

    Raises TagfError for invalid arguments or an ``out`` that is a non-empty folder other than a
    previous synth output. Same arguments → byte-identical files.
    """
    _check_arguments(trials, seconds, seed)
    seconds = float(seconds)  # 12 and 12.0 must give the same synth.json
    # Absolute and normalised, so "." or "data/.." still has a parent to put the temporary sibling in.
    out = Path(os.path.abspath(out))
    check_destination(out)
    plans = plan_dataset(trials, seconds)
    with staged_output(out) as staging:
        written = [_write_video(staging, plan, seed, number) for number, plan in enumerate(plans, start=1)]
        _write_test_set_files(staging, plans)
        (staging / DESCRIPTION_FILE).write_text(description_json(trials, seconds, seed, written), encoding="utf-8")
        files = sum(1 for path in staging.rglob("*") if path.is_file())
    by_partition: dict[str, list[str]] = {"train": [], "validate": [], "test": []}
    for plan in plans:
        for trial in plan.trials:
            by_partition[trial.partition].append(trial.name)
    logger.info("wrote %d trials in %d videos (%d files) to %s", trials, len(plans), files, out)
    return SynthReport(
        out=out,
        seed=seed,
        seconds=seconds,
        train=by_partition["train"],
        validate=by_partition["validate"],
        test=by_partition["test"],
        videos=[plan.file_name for plan in plans],
        files=files,
    )


def _check_arguments(trials: int, seconds: float, seed: int) -> None:
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise TagfError(f"trials {trials!r} is not allowed: give a whole number from 1 to {MAX_TRIALS}")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise TagfError(
            f"seconds {seconds!r} is not allowed: give a number of seconds per trial, at least {MIN_SECONDS}"
        )
    if seconds <= 0:
        raise TagfError(f"seconds {seconds!r} is not allowed: it must be positive, at least {MIN_SECONDS}")
    if seconds < MIN_SECONDS:
        raise TagfError(
            f"seconds {seconds!r} is too short for a trial: give at least {MIN_SECONDS} "
            "(room for unannotated rows at start, middle and end, a hidden face and a speech pause)"
        )
    if seconds > MAX_SECONDS:
        raise TagfError(f"seconds {seconds!r} is too long: give at most {MAX_SECONDS:g} seconds per trial")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TagfError(f"seed {seed!r} is not allowed: give a whole number >= 0")


def _stream(seed: int, number: int, purpose: int, member: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, number, purpose, member])


def _write_video(root: Path, plan: VideoPlan, seed: int, number: int) -> WrittenVideo:
    """Render one video with its crops, and write the annotation (or ground-truth) file of each trial."""
    people = tuple(
        random_person(_stream(seed, number, _PEOPLE, member), plan.frames, plan.fps)
        for member in range(len(plan.trials))
    )
    scene = random_scene(_stream(seed, number, _ROOM), plan.width, plan.height, plan.frames, len(people))
    audio = _soundtrack(plan, people, scene.room_noise_level, seed, number) if plan.has_audio else None

    crop_targets = []
    for index, (trial, person) in enumerate(zip(plan.trials, people, strict=True)):
        if trial.has_crops:
            folder = crops_folder(root, trial.name)
            folder.mkdir(parents=True)
            crop_targets.append((folder, person, crop_view(scene, index)))

    pixel_noise = _stream(seed, number, _PIXEL_NOISE)
    path = video_path(root, plan.file_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    # JPEG encoding and file writes release the GIL: a background thread does them while the next frame renders.
    with (
        ThreadPoolExecutor(max_workers=1) as crop_writer,
        VideoWriter(path, plan.container, plan.fps, plan.width, plan.height, audio, SAMPLE_RATE) as writer,
    ):
        pending: deque[Future[None]] = deque()
        for frame in range(plan.frames):
            writer.write_frame(render_frame(scene, people, frame, pixel_noise))
            for folder, person, view in crop_targets:
                if person.has_crop[frame]:
                    crop = render_crop(view, scene, person, frame, pixel_noise)
                    pending.append(crop_writer.submit(_write_jpeg, folder / crop_file_name(frame), crop))
            while len(pending) > _CROPS_IN_FLIGHT:  # bounded, so a slow disk cannot pile up crops in memory
                pending.popleft().result()  # .result() re-raises a failed write here
        while pending:
            pending.popleft().result()

    for trial, person in zip(plan.trials, people, strict=True):
        if trial.partition == "test":
            target = ground_truth_path(root, trial.name)
        else:
            target = annotation_path(root, trial.partition, trial.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(annotation_text(person.labels, person.unannotated), encoding="utf-8")
    logger.info(
        "wrote %s: %d frames at %s fps, trials %s",
        plan.file_name,
        plan.frames,
        plan.fps,
        ", ".join(t.name for t in plan.trials),
    )
    return WrittenVideo(plan=plan, people=people)


def _soundtrack(plan: VideoPlan, people: tuple[Person, ...], noise_level: float, seed: int, number: int) -> np.ndarray:
    """Every person's voice (all talk over each other in a two-person video) plus the room noise."""
    samples = samples_for_frames(plan.frames, plan.fps)
    mix = np.zeros(samples, dtype=np.float32)
    for member, person in enumerate(people):
        rng = _stream(seed, number, _VOICES, member)
        mix += synthesize_voice(rng, person.voice_expression, person.speaking, plan.fps, person.voice)
    if len(people) > 1:
        mix *= _TWO_VOICE_GAIN
    return mix + room_noise(_stream(seed, number, _ROOM_NOISE), samples, noise_level)


def _write_test_set_files(root: Path, plans: list[VideoPlan]) -> None:
    """The test-set list and the organisers' sample submission (one row per video frame of each test trial)."""
    test_trials = [(trial, plan) for plan in plans for trial in plan.trials if trial.partition == "test"]
    (root / TEST_SET_LIST).write_text("".join(f"{trial.name}\n" for trial, _ in test_trials), encoding="utf-8")
    rows = [SAMPLE_SUBMISSION_HEADER]
    for trial, plan in test_trials:
        rows.extend(sample_submission_row(trial.name, frame) for frame in range(plan.frames))
    (root / SAMPLE_SUBMISSION).write_text("\n".join(rows) + "\n", encoding="utf-8")


def _write_jpeg(path: Path, rgb: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path.name} as JPEG")  # a broken OpenCV build, not user error
    path.write_bytes(encoded.tobytes())
