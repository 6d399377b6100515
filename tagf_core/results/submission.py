"""The ABAW challenge submission of a stamp: ``image_location,valence,arousal`` from the best run per emotion."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from tagf_core.atomic import atomic_write
from tagf_core.data.layout import EMOTIONS
from tagf_core.errors import TagfError
from tagf_core.results.collect import CollectedRuns, finish_command, read_extra_predictions
from tagf_core.training.run import RunSpec

log = logging.getLogger(__name__)

SUBMISSION_HEADER = "image_location,valence,arousal"


def write_submission(collected: CollectedRuns, out: Path, sample_file: Path | None = None) -> Path:
    """The ABAW submission ``image_location,valence,arousal`` from the best run per emotion (ref §2.7).

    Rows are ``<trial>/<%05d 1-based frame>.jpg,<valence>,<arousal>``. With ``sample_file`` (the organisers'
    sample), the rows and their order are exactly the sample's; the value of ``<trial>/<frame>.jpg`` is the
    prediction of that frame, or the trial's last prediction past its end (so the sample's rows per trial set the
    length: shorter predictions are padded with their last value, longer ones truncated, as ref §2.7). Without a
    sample: every predicted frame of every trial, trials sorted by name.

    Raises:
        TagfError: an emotion has no finished run, predictions are missing or disagree between the emotions, or a
            trial of the sample has no predictions.
    """
    predictions = {}
    for emotion in EMOTIONS:
        run = collected.best_run(emotion)
        if run is None:
            folds = ", ".join(str(f) for f in collected.folds)
            raise TagfError(
                f"{collected.folder}: no finished {emotion} run (finished folds: {folds}); a submission needs both "
                f"emotions: run `{finish_command(_run_to_finish(collected, emotion))}`"
            )
        log.info("submission: %s from fold %d (best val CCC %.4f)", emotion, run.fold, run.best_val_ccc)
        predictions[emotion] = read_extra_predictions(run.folder, emotion)
    valence, arousal = predictions["valence"], predictions["arousal"]
    lines = [SUBMISSION_HEADER]
    if sample_file is None:
        if set(valence) != set(arousal):
            only = sorted(set(valence) ^ set(arousal))
            raise TagfError(f"predicted trials differ between valence and arousal: {_some(only)}")
        for trial in sorted(valence):
            v, a = valence[trial], arousal[trial]
            if len(v) != len(a):
                raise TagfError(f"{trial}: {len(v)} valence but {len(a)} arousal predictions (different data?)")
            lines += [
                f"{trial}/{i + 1:05d}.jpg,{_number(x)},{_number(y)}" for i, (x, y) in enumerate(zip(v, a, strict=True))
            ]
    else:
        sample = _read_sample(Path(sample_file))
        missing = sorted({trial for _, trial, _ in sample} - (set(valence) & set(arousal)))
        if missing:
            raise TagfError(f"{sample_file}: no predictions for trial(s) {_some(missing)} of the sample")
        for location, trial, frame in sample:
            v, a = valence[trial], arousal[trial]
            lines.append(f"{location},{_number(v[min(frame, len(v)) - 1])},{_number(a[min(frame, len(a)) - 1])}")
    atomic_write(Path(out), "\n".join(lines) + "\n")
    return Path(out)


def _run_to_finish(collected: CollectedRuns, emotion: str) -> Path:
    """The run folder of ``emotion`` to finish first: a started one (resume it), else the first fold's (train it)."""
    suffix = "" if collected.model == "tagf" else f"-{collected.model}"
    started = [name for name in collected.unfinished if (parsed := RunSpec.parse_name(name)) and parsed[1] == emotion]
    return collected.folder / (started[0] if started else f"fold{collected.folds[0]}-{emotion}{suffix}")


def _read_sample(path: Path) -> list[tuple[str, str, int]]:
    """``(image_location, trial, 1-based frame)`` per row of the organisers' sample file, in file order."""
    try:
        # utf-8-sig strips a byte-order mark that Windows editors put in front of the header, as for annotations
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise TagfError(f"{path}: cannot read the sample file ({e.strerror})") from e
    except UnicodeDecodeError as e:
        raise TagfError(f"{path}: sample file is not UTF-8 text ({e.reason} at byte {e.start})") from e
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0].split(",")[0].strip() != "image_location":
        raise TagfError(f"{path}: not a sample file (its first line should be `{SUBMISSION_HEADER}`)")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        location = line.split(",")[0].strip()
        trial, _, image = location.rpartition("/")
        stem = image.rsplit(".", 1)[0]
        if not trial or not stem.isdigit() or int(stem) < 1:
            raise TagfError(f"{path}:{number}: {location!r} is not <trial>/<1-based frame>.jpg")
        rows.append((location, trial, int(stem)))
    return rows


def _number(value: float) -> str:
    return repr(float(value))  # shortest text that reads back as the same float


def _some(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
