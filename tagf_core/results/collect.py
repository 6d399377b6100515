"""Collect the finished runs of a stamp: what each run's ``summary.json`` states, per model, and the spread
across folds. Reads only the run folders (``RunPaths``); imports no torch, no mlflow and no rich.

The spread across folds is the population standard deviation (ddof=0), defined for a single fold too.
The challenge score of a fold is P = (CCC_valence + CCC_arousal) / 2 (ref §4).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagf_core.data.layout import EMOTIONS, Emotion
from tagf_core.errors import TagfError
from tagf_core.training.run import MODELS, RunPaths, RunSpec


@dataclass(frozen=True)
class FoldRun:
    """One finished fold × emotion run, as its ``summary.json`` states it."""

    fold: int
    emotion: Emotion
    best_val_ccc: float
    best_epoch: int
    run_id: str
    folder: Path
    model: str = "tagf"


@dataclass(frozen=True)
class EmotionStats:
    """Best validation CCC of one emotion across folds: mean and population std over ``folds`` runs."""

    emotion: Emotion
    mean: float
    std: float
    folds: int


@dataclass(frozen=True)
class FoldScore:
    """The challenge score P = (CCC_V + CCC_A) / 2 of a fold with both emotions finished."""

    fold: int
    ccc_valence: float
    ccc_arousal: float

    @property
    def score(self) -> float:
        return (self.ccc_valence + self.ccc_arousal) / 2


@dataclass(frozen=True)
class CollectedRuns:
    """The finished runs of a stamp and what they add up to."""

    stamp: str
    folder: Path
    runs: tuple[FoldRun, ...]
    """Sorted by fold, valence before arousal; all of one model."""
    stats: tuple[EmotionStats, ...]
    """One per emotion with at least one finished run."""
    scores: tuple[FoldScore, ...]
    """One per fold with both emotions finished."""
    unfinished: tuple[str, ...] = ()
    """Run folders of the model without ``summary.json`` (still training, crashed or killed)."""
    model: str = "tagf"

    @property
    def mean_score(self) -> float | None:
        """Mean of the per-fold challenge scores P; None when no fold has both emotions."""
        return float(np.mean([s.score for s in self.scores])) if self.scores else None

    @property
    def folds(self) -> tuple[int, ...]:
        return tuple(sorted({run.fold for run in self.runs}))

    def run(self, fold: int, emotion: Emotion) -> FoldRun | None:
        return next((r for r in self.runs if r.fold == fold and r.emotion == emotion), None)

    def stats_of(self, emotion: Emotion) -> EmotionStats | None:
        return next((s for s in self.stats if s.emotion == emotion), None)

    def best_run(self, emotion: Emotion) -> FoldRun | None:
        """The run of ``emotion`` with the highest best validation CCC (ties: lowest fold), as ref §2.7 picks."""
        runs = [r for r in self.runs if r.emotion == emotion]
        if not runs:
            return None
        return max(runs, key=lambda r: (_finite_or_minus_inf(r.best_val_ccc), -r.fold))


def _finite_or_minus_inf(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def collect_runs(output_root: Path, stamp: str, model: str = "tagf") -> CollectedRuns:
    """The finished runs of ``model`` under ``<output_root>/<stamp>/``.

    Raises:
        TagfError: the stamp folder is missing or holds no finished run of ``model``, or a ``summary.json`` is
            unreadable.
    """
    folder = Path(output_root) / stamp
    if not folder.is_dir():
        stamps = sorted(p.name for p in Path(output_root).iterdir() if p.is_dir()) if Path(output_root).is_dir() else []
        known = f"stamps there: {', '.join(stamps[:10])}" if stamps else "no stamps there"
        raise TagfError(f"{folder}: no such stamp folder ({known})")
    runs: list[FoldRun] = []
    unfinished: list[str] = []
    for run_folder in sorted(p for p in folder.iterdir() if p.is_dir() and model_of_folder(p.name) == model):
        if RunPaths(run_folder).summary.is_file():
            runs.append(_read_summary(run_folder))
        else:
            unfinished.append(run_folder.name)
    if not runs:
        why = f" (unfinished: {_some_commands(folder, unfinished)})" if unfinished else ""
        others = sorted(
            {m for p in folder.iterdir() if (m := model_of_folder(p.name)) and m != model}, key=MODELS.index
        )
        if others:
            why += f"; runs of {', '.join(others)} are there: collect them with --model"
        suffix = "" if model == "tagf" else f"-{model}"
        raise TagfError(f"{folder}: no finished {model} runs (no fold<K>-<emotion>{suffix}/summary.json){why}")
    runs.sort(key=lambda r: (r.fold, EMOTIONS.index(r.emotion)))
    stats = []
    for emotion in EMOTIONS:
        values = [r.best_val_ccc for r in runs if r.emotion == emotion]
        if values:
            stats.append(EmotionStats(emotion, float(np.mean(values)), float(np.std(values, ddof=0)), len(values)))
    by_key = {(r.fold, r.emotion): r for r in runs}
    scores = tuple(
        FoldScore(fold, by_key[fold, "valence"].best_val_ccc, by_key[fold, "arousal"].best_val_ccc)
        for fold in sorted({r.fold for r in runs})
        if (fold, "valence") in by_key and (fold, "arousal") in by_key
    )
    return CollectedRuns(stamp, folder, tuple(runs), tuple(stats), scores, tuple(unfinished), model)


def finish_command(run_folder: Path) -> str:
    """The command that takes the run of ``run_folder`` (``<output_root>/<stamp>/<run name>``) to its end.

    ``tagf resume`` for a run that started (its run.json is there: a killed or crashed run, which ``tagf train``
    refuses); ``tagf train … --overwrite`` for a folder a start left without run.json (nothing to resume);
    ``tagf train`` for a run never started (no folder).
    """
    run_folder = Path(run_folder)
    parsed = RunSpec.parse_name(run_folder.name)
    if parsed is None:
        raise ValueError(f"{run_folder.name!r} is not the name of a run folder")
    fold, emotion, model = parsed
    which = f"--stamp {run_folder.parent.name} --fold {fold} --emotion {emotion}" + (
        "" if model == "tagf" else f" --model {model}"
    )
    if RunPaths(run_folder).run_record.is_file():
        return f"tagf resume {which}"
    return f"tagf train {which}" + (" --overwrite" if run_folder.exists() else "")


def _some_commands(folder: Path, names: list[str], limit: int = 4) -> str:
    """``fold0-valence: `tagf resume …```; … for the first ``limit`` run names, then how many more."""
    shown = "; ".join(f"{name}: `{finish_command(folder / name)}`" for name in names[:limit])
    return shown + (f"; and {len(names) - limit} more" if len(names) > limit else "")


def model_of_folder(folder_name: str) -> str | None:
    """The model of a run folder's name (``fold0-valence`` → tagf, ``fold0-valence-ridge`` → ridge), or None."""
    parsed = RunSpec.parse_name(folder_name)
    return None if parsed is None else parsed[2]


def models_of(output_root: Path, stamp: str) -> list[str]:
    """The models with at least one finished run under ``<output_root>/<stamp>/``, in ``MODELS`` order."""
    folder = Path(output_root) / stamp
    found = {
        model
        for p in (folder.iterdir() if folder.is_dir() else [])
        if (model := model_of_folder(p.name)) is not None and RunPaths(p).summary.is_file()
    }
    return [m for m in MODELS if m in found]


def _read_summary(run_folder: Path) -> FoldRun:
    path = RunPaths(run_folder).summary
    try:
        data = json.loads(path.read_text())
        fold, emotion = int(data["fold"]), str(data["emotion"])
        best_val_ccc, best_epoch, run_id = float(data["best_val_ccc"]), int(data["best_epoch"]), str(data["run_id"])
    except (OSError, ValueError, TypeError, KeyError) as e:
        reason = f"missing key {e}" if isinstance(e, KeyError) else str(e)
        raise TagfError(
            f"{path}: unreadable run summary ({reason}); needs fold, emotion, best_val_ccc, best_epoch, run_id"
        ) from e
    model = str(data.get("model", "tagf"))  # summaries written before baselines existed are TAGF's
    try:
        spec = RunSpec(run_folder.parent.name, fold, emotion, model)  # type: ignore[arg-type]
    except TagfError as e:
        raise TagfError(f"{path}: {e}") from e
    if spec.name != run_folder.name:
        raise TagfError(f"{path}: says fold {fold}, {emotion}, model {model}, but lies in {run_folder.name}/")
    return FoldRun(fold, spec.emotion, best_val_ccc, best_epoch, run_id, run_folder, model)


def read_extra_predictions(run_folder: Path, emotion: Emotion) -> dict[str, np.ndarray]:
    """``trial → per-frame predictions`` from ``<run_folder>/predictions/extra/<trial>.txt`` (ref §2.7 format).

    Raises:
        TagfError: no prediction files, a file for another emotion, or a line that is not a number.
    """
    folder = RunPaths(Path(run_folder)).predictions("extra")
    files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if not files:
        fold = run_folder.name.removeprefix("fold").split("-")[0]
        raise TagfError(
            f"{folder}: no unseen-partition predictions; write them with "
            f"`tagf predict --stamp {run_folder.parent.name} --fold {fold} --emotion {emotion} --partition extra`"
        )
    predictions = {}
    for file in files:
        lines = [line.strip() for line in file.read_text().splitlines() if line.strip()]
        if not lines or lines[0] != emotion:
            found = repr(lines[0]) if lines else "an empty file"
            raise TagfError(f"{file}: first line should be {emotion!r}, found {found}")
        try:
            predictions[file.stem] = np.array([float(v) for v in lines[1:]], dtype=np.float64)
        except ValueError as e:
            raise TagfError(f"{file}: a line is not a number ({e})") from e
        if predictions[file.stem].size == 0:
            raise TagfError(f"{file}: no predictions after the header line")
    return predictions


def compare_models(output_root: Path, stamp: str) -> list[CollectedRuns]:
    """The finished runs of every model of the stamp (TAGF first, then the baselines), one collection each."""
    return [collect_runs(output_root, stamp, model) for model in models_of(output_root, stamp)]
