"""Find the trials of an Aff-Wild2 VA release on disk and the files each one needs.

Two annotation layouts are accepted (ref §2.1):
  official   ``Annotations/VA_Estimation_Challenge/{Train_Set,Validation_Set}/<trial>.txt``
  reference  ``<annotations>/VA/{train,validate}/<trial>.txt`` (the renamed copy the reference code reads)
Faces come from ``cropped_aligned/<trial>/``; videos (.mp4/.avi/.mkv/.mov) are found at any depth, and
trials ``X_left``/``X_right`` use video ``X``. Unlabelled test trials (partition ``extra``) are those in the
test-set list file and the ``cropped_aligned`` folders without annotations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tagf_core.data.layout import Partition, video_name_for
from tagf_core.errors import TagfError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")
FACES_FOLDER = "cropped_aligned"
TEST_LIST_MARKER = "test_set_release"  # Valence_Arousal_Estimation_Challenge_test_set_release.txt
ANNOTATION_FOLDERS: dict[tuple[str, str], Partition] = {
    ("VA_Estimation_Challenge", "Train_Set"): "train",
    ("VA_Estimation_Challenge", "Validation_Set"): "validate",
    ("VA", "train"): "train",
    ("VA", "validate"): "validate",
}


@dataclass(frozen=True)
class TrialSource:
    """The input files of one trial; ``problem`` says why it cannot be processed (then it fails alone)."""

    trial: str
    partition: Partition
    annotation: Path | None
    faces: Path | None
    video: Path | None
    problem: str = ""


@dataclass(frozen=True)
class Release:
    root: Path
    trials: tuple[TrialSource, ...]
    layout: str
    """"official", "reference" or "unlabelled" (no annotation folder was found)."""


def _walk(root: Path) -> tuple[list[tuple[Path, list[str]]], list[Path]]:
    """List (folder, files) at any depth, and every cropped_aligned folder seen, without entering them
    (the ~1.5M face crops of a real release are listed per trial, on demand)."""
    folders: list[tuple[Path, list[str]]] = []
    faces_roots: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if FACES_FOLDER in dirs:
            faces_roots.append(here / FACES_FOLDER)
        dirs[:] = sorted(d for d in dirs if d != FACES_FOLDER and not d.startswith("."))
        folders.append((here, sorted(files)))
    return folders, faces_roots


def _index_videos(folders: list[tuple[Path, list[str]]]) -> tuple[dict[str, Path], set[str]]:
    videos: dict[str, Path] = {}
    ambiguous: set[str] = set()
    for folder, files in folders:
        for name in files:
            path = folder / name
            if path.suffix.lower() not in VIDEO_SUFFIXES:
                continue
            if path.stem in videos:
                ambiguous.add(path.stem)
            videos.setdefault(path.stem, path)
    return videos, ambiguous


def read_test_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise TagfError(f"{path}: cannot read the test-set list ({e})") from e
    return [line.strip() for line in lines if line.strip()]


def discover_release(root: Path) -> Release:
    """List every trial under ``root`` with its partition and input files.

    Raises TagfError for a release that cannot be read at all (no such folder, no trials, two
    annotation layouts); a problem with one trial is recorded in its ``problem`` instead.
    """
    root = Path(root)
    if not root.is_dir():
        raise TagfError(f"{root}: data root is not a folder")
    folders, faces_roots = _walk(root)
    if len(faces_roots) > 1:
        raise TagfError(f"{root}: holds several cropped_aligned folders ({', '.join(map(str, faces_roots))}); keep one")

    annotations: dict[str, tuple[Partition, Path]] = {}
    layouts: set[str] = set()
    conflicts: dict[str, str] = {}
    for folder, files in folders:
        key = (folder.parent.name, folder.name)
        if key not in ANNOTATION_FOLDERS:
            continue
        partition = ANNOTATION_FOLDERS[key]
        layouts.add("official" if key[0] == "VA_Estimation_Challenge" else "reference")
        for name in files:
            if not name.endswith(".txt"):
                continue
            trial = name[: -len(".txt")]
            if trial in annotations and annotations[trial][0] != partition:
                conflicts[trial] = f"{annotations[trial][1]} and {folder / name}"
            annotations.setdefault(trial, (partition, folder / name))
    if len(layouts) > 1:
        raise TagfError(
            f"{root}: holds both the official (VA_Estimation_Challenge/Train_Set) and the reference "
            "(VA/train) annotation layouts; keep one"
        )

    test_lists = [folder / f for folder, files in folders for f in files if TEST_LIST_MARKER in f.lower()]
    test_trials: list[str] = []
    for path in test_lists:
        test_trials.extend(read_test_list(path))

    face_folders = {p.name: p for p in sorted(faces_roots[0].iterdir()) if p.is_dir()} if faces_roots else {}
    videos, ambiguous = _index_videos(folders)

    names: dict[str, Partition] = {trial: partition for trial, (partition, _p) in annotations.items()}
    for trial in [*test_trials, *face_folders]:
        names.setdefault(trial, "extra")
    if not names:
        raise TagfError(
            f"{root}: no trials found (expected Annotations/VA_Estimation_Challenge/Train_Set/*.txt, "
            "<annotations>/VA/train/*.txt or cropped_aligned/<trial>/)"
        )

    sources = []
    for trial in sorted(names):
        partition = names[trial]
        video_name = video_name_for(trial) if trial not in videos else trial
        video = videos.get(video_name)
        problem = ""
        if trial in conflicts:
            problem = f"trial {trial} is annotated in two partitions: {conflicts[trial]}"
        elif video_name in ambiguous:
            problem = f"two videos are named {video_name} under {root}; keep one"
        elif video is None:
            problem = f"no video for trial {trial} (looked for {video_name}{{{','.join(VIDEO_SUFFIXES)}}} under {root})"
        sources.append(
            TrialSource(
                trial=trial,
                partition=partition,
                annotation=annotations[trial][1] if trial in annotations else None,
                faces=face_folders.get(trial),
                video=video,
                problem=problem,
            )
        )
    layout = layouts.pop() if layouts else "unlabelled"
    return Release(root=root, trials=tuple(sources), layout=layout)
