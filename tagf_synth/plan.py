"""Which videos and trials a dataset of N trials holds: names, partitions, formats. No randomness.

The structure depends only on the number of trials and the seconds per trial, so every seed exercises the
same preprocessing paths; the seed only changes the content (labels, faces, voices, missing frames).

Videos are planned in this order, each adding one thing preprocessing must handle:

1. ``synth-01-30-288x144``: two people, trials ``…_left`` and ``…_right`` sharing one mp4 (with N = 1, one
   person and one trial ``synth-01-30-288x144``);
2. ``synth-02-25-192x144``: no ``cropped_aligned`` folder: faces must come from the Haar cascade;
3. ``synth-03-30-192x144``: ``.avi`` at 30000/1001 fps;
4. ``synth-04-25-192x144``: mp4 without an audio track;
5. and on: plain mp4s cycling through 30000/1001, 30 and 25 fps.

Partitions: with N ≥ 6, validate takes round(0.2·N) trials and test round(0.15·N), each at least one, and
train the rest (N = 8: 5 train, 2 validate, 1 test). With N < 6, train takes up to 4 trials, then
validate the next one; test stays empty. Trials are dealt in video order, train first, so the pair, the
cascade-only trial and the AVI are always labelled, and test trials always have crops.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from tagf_synth.layout import Partition
from tagf_synth.media import Container

Side = Literal["left", "right"]
_PAIR_SIDES: tuple[Side, Side] = ("left", "right")

SMALL_DATASET = 6  # from this many trials on, every partition gets at least one trial
SMALL_DATASET_TRAIN = 4
NTSC_FPS = Fraction(30000, 1001)


@dataclass(frozen=True)
class TrialPlan:
    name: str
    partition: Partition
    side: Side | None
    """Which person in a two-person video; ``None`` when the video shows one person."""
    has_crops: bool
    """False: no ``cropped_aligned`` folder, preprocessing must detect the face in the raw video."""


@dataclass(frozen=True)
class VideoPlan:
    stem: str
    container: Container
    fps: Fraction
    width: int
    height: int
    frames: int
    has_audio: bool
    trials: tuple[TrialPlan, ...]

    @property
    def file_name(self) -> str:
        return f"{self.stem}.{self.container}"


@dataclass(frozen=True)
class _Template:
    container: Container
    fps: Fraction
    width: int
    height: int
    has_audio: bool = True
    has_crops: bool = True


_PAIR = _Template("mp4", Fraction(30), 288, 144)
_SINGLES = (
    _Template("mp4", Fraction(25), 192, 144, has_crops=False),
    _Template("avi", NTSC_FPS, 192, 144),
    _Template("mp4", Fraction(25), 192, 144, has_audio=False),
)
_PLAIN_FPS = (NTSC_FPS, Fraction(30), Fraction(25))


def partition_sizes(trials: int) -> dict[Partition, int]:
    """How many trials go to train, validate and test (see the module docstring)."""
    if trials < SMALL_DATASET:
        train = min(trials, SMALL_DATASET_TRAIN)
        return {"train": train, "validate": trials - train, "test": 0}
    validate = max(1, _round_half_up(0.2 * trials))
    test = max(1, _round_half_up(0.15 * trials))
    return {"train": trials - validate - test, "validate": validate, "test": test}


def frames_for(seconds: float, fps: Fraction) -> int:
    """Frames in ``seconds`` at ``fps``, rounded half up (exact arithmetic: 12 s at 30000/1001 → 360)."""
    return int(Fraction(seconds) * fps + Fraction(1, 2))


def plan_dataset(trials: int, seconds: float) -> list[VideoPlan]:
    """The videos (and their trials) of a dataset with ``trials`` trials of ``seconds`` each."""
    partitions = [p for p, count in partition_sizes(trials).items() for _ in range(count)]
    videos: list[VideoPlan] = []
    dealt = 0
    while dealt < trials:
        number = len(videos) + 1
        template = _template(number)
        stem = f"synth-{number:02d}-{round(template.fps)}-{template.width}x{template.height}"
        if number == 1 and trials >= 2:
            members: tuple[TrialPlan, ...] = tuple(
                TrialPlan(f"{stem}_{side}", partitions[dealt + i], side, template.has_crops)
                for i, side in enumerate(_PAIR_SIDES)
            )
        else:
            members = (TrialPlan(stem, partitions[dealt], None, template.has_crops),)
        dealt += len(members)
        videos.append(
            VideoPlan(
                stem=stem,
                container=template.container,
                fps=template.fps,
                width=template.width,
                height=template.height,
                frames=frames_for(seconds, template.fps),
                has_audio=template.has_audio,
                trials=members,
            )
        )
    return videos


def _template(number: int) -> _Template:
    if number == 1:
        return _PAIR
    if number - 2 < len(_SINGLES):
        return _SINGLES[number - 2]
    plain = number - 2 - len(_SINGLES)
    return _Template("mp4", _PLAIN_FPS[plain % len(_PLAIN_FPS)], 192, 144)


def _round_half_up(value: float) -> int:
    return int(value + 0.5)
