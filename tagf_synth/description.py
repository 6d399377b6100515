"""``synth.json``: what a synth run generated and from which arguments; it also marks a folder as synth output.

Deterministic on purpose (sorted keys, no clock, no host names): it is one of the files that must be
byte-identical between two runs with the same arguments. The library versions are recorded because the
encoded bytes depend on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from tagf_synth.layout import GROUND_TRUTH_FOLDER
from tagf_synth.media import AUDIO_CODEC, VIDEO_CODEC
from tagf_synth.person import NOT_HIDDEN, Person
from tagf_synth.plan import TrialPlan, VideoPlan
from tagf_synth.voice import SAMPLE_RATE

DESCRIPTION_FORMAT = "tagf-synth"
GENERATOR_VERSION = 2
"""Bump when the same arguments would produce different data."""

NOTE = (
    "Synthetic data in the layout of the Aff-Wild2 valence-arousal release (ABAW challenge), made by "
    "`tagf synth`; not Aff-Wild2. Faces are drawn, voices synthesised, and both follow the labels. "
    f"{GROUND_TRUTH_FOLDER}/ is synth-only: the test trials' labels in the annotation format, so predictions "
    "can be scored; the official release has no such folder."
)


@dataclass(frozen=True)
class WrittenVideo:
    """What was written for one video: its plan and the people (trials) it shows."""

    plan: VideoPlan
    people: tuple[Person, ...]


def description_json(trials: int, seconds: float, seed: int, videos: list[WrittenVideo]) -> str:
    partitions: dict[str, list[str]] = {"train": [], "validate": [], "test": []}
    for video in videos:
        for trial in video.plan.trials:
            partitions[trial.partition].append(trial.name)
    payload: dict[str, Any] = {
        "format": DESCRIPTION_FORMAT,
        "generator_version": GENERATOR_VERSION,
        "note": NOTE,
        "arguments": {"trials": trials, "seconds": seconds, "seed": seed},
        "software": {"av": av.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
        "partitions": partitions,
        "videos": [_video_entry(video.plan) for video in videos],
        "trials": [
            _trial_entry(video.plan, trial, person)
            for video in videos
            for trial, person in zip(video.plan.trials, video.people, strict=True)
        ],
    }
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def synth_record_problem(path: Path) -> str | None:
    """None if the file ``path`` (a ``synth.json``) was written by this generator (any version), else why it is
    someone else's: unreadable, not JSON, or without ``"format": "tagf-synth"``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"
    except ValueError as e:  # UnicodeDecodeError included
        return f"not JSON text: {' '.join(str(e).split())}"
    found = data.get("format") if isinstance(data, dict) else None
    if found == DESCRIPTION_FORMAT:
        return None
    return (
        f"its format is {found!r}, not {DESCRIPTION_FORMAT!r}"
        if found
        else f'no "format": "{DESCRIPTION_FORMAT}" in it'
    )


def _video_entry(plan: VideoPlan) -> dict[str, Any]:
    return {
        "file": plan.file_name,
        "container": plan.container,
        "video_codec": VIDEO_CODEC[plan.container],
        "audio_codec": AUDIO_CODEC[plan.container] if plan.has_audio else None,
        "audio_sample_rate": SAMPLE_RATE if plan.has_audio else None,
        "fps": f"{plan.fps.numerator}/{plan.fps.denominator}",
        "frames": plan.frames,
        "width": plan.width,
        "height": plan.height,
        "trials": [trial.name for trial in plan.trials],
    }


def _trial_entry(plan: VideoPlan, trial: TrialPlan, person: Person) -> dict[str, Any]:
    return {
        "name": trial.name,
        "partition": trial.partition,
        "video": plan.file_name,
        "side": trial.side,
        "face_source": "cropped_aligned" if trial.has_crops else "raw_video_only",
        "frames": plan.frames,
        "fps": f"{plan.fps.numerator}/{plan.fps.denominator}",
        "annotated_frames": int((~person.unannotated).sum()),
        "unannotated_frames": int(person.unannotated.sum()),
        "face_hidden_frames": int((person.hidden != NOT_HIDDEN).sum()),
        "crops_written": int(person.has_crop.sum()) if trial.has_crops else 0,
        "speaking_frames": int(person.speaking.sum()) if plan.has_audio else 0,
        "has_audio": plan.has_audio,
    }
