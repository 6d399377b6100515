"""Collect the finished runs of a stamp: a folds × emotions table, summary files and the ABAW submission.

Reads only the run folders (``<output_root>/<stamp>/fold<K>-<emotion>[-<model>]/``): ``summary.json`` marks a
finished run, ``predictions/extra/<trial>.txt`` holds its unseen-partition predictions in the reference's format (the
emotion's name, then one value per frame, ref §2.7). Imports no torch and no mlflow.

The spread across folds is the population standard deviation (ddof=0), defined for a single fold too.
The challenge score of a fold is P = (CCC_valence + CCC_arousal) / 2 (ref §4).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

from tagf_core.atomic import atomic_write
from tagf_core.errors import TagfError
from tagf_core.training.run import MODELS, RunSpec

if TYPE_CHECKING:
    from rich.table import Table

log = logging.getLogger(__name__)

Emotion = Literal["valence", "arousal"]
EMOTIONS: tuple[Emotion, ...] = ("valence", "arousal")
SUMMARY_FILE = "summary.json"
SUBMISSION_HEADER = "image_location,valence,arousal"
_RUN_FOLDER = re.compile(
    r"fold(\d+)-(valence|arousal)(?:-(" + "|".join(re.escape(m) for m in MODELS if m != "tagf") + r"))?"
)


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


# ---- reading the run folders ---------------------------------------------------------------------------------


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
    for run_folder in sorted(p for p in folder.iterdir() if p.is_dir() and _model_of(p.name) == model):
        if (run_folder / SUMMARY_FILE).is_file():
            runs.append(_read_summary(run_folder))
        else:
            unfinished.append(run_folder.name)
    if not runs:
        why = f" ({', '.join(unfinished)} unfinished: resume them with `tagf resume`)" if unfinished else ""
        others = sorted({m for p in folder.iterdir() if (m := _model_of(p.name)) and m != model}, key=MODELS.index)
        if others:
            why += f"; runs of {', '.join(others)} are there: collect them with --model"
        suffix = "" if model == "tagf" else f"-{model}"
        raise TagfError(f"{folder}: no finished {model} runs (no fold<K>-<emotion>{suffix}/{SUMMARY_FILE}){why}")
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


def _model_of(folder_name: str) -> str | None:
    """The model of a run folder's name (``fold0-valence`` → tagf, ``fold0-valence-ridge`` → ridge), or None."""
    match = _RUN_FOLDER.fullmatch(folder_name)
    return None if match is None else (match.group(3) or "tagf")


def models_of(output_root: Path, stamp: str) -> list[str]:
    """The models with at least one finished run under ``<output_root>/<stamp>/``, in ``MODELS`` order."""
    folder = Path(output_root) / stamp
    found = {
        model
        for p in (folder.iterdir() if folder.is_dir() else [])
        if (model := _model_of(p.name)) is not None and (p / SUMMARY_FILE).is_file()
    }
    return [m for m in MODELS if m in found]


def _read_summary(run_folder: Path) -> FoldRun:
    path = run_folder / SUMMARY_FILE
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
        expected = RunSpec(run_folder.parent.name, fold, cast(Emotion, emotion), model).name  # type: ignore[arg-type]
    except TagfError as e:
        raise TagfError(f"{path}: {e}") from e
    if expected != run_folder.name:
        raise TagfError(f"{path}: says fold {fold}, {emotion}, model {model}, but lies in {run_folder.name}/")
    return FoldRun(fold, cast(Emotion, emotion), best_val_ccc, best_epoch, run_id, run_folder, model)


def read_extra_predictions(run_folder: Path, emotion: Emotion) -> dict[str, np.ndarray]:
    """``trial → per-frame predictions`` from ``<run_folder>/predictions/extra/<trial>.txt`` (ref §2.7 format).

    Raises:
        TagfError: no prediction files, a file for another emotion, or a line that is not a number.
    """
    folder = Path(run_folder) / "predictions" / "extra"
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


# ---- summary files -------------------------------------------------------------------------------------------


def _summary_rows(collected: CollectedRuns) -> list[dict[str, str]]:
    """Wide rows: one per fold, then ``mean`` and ``std`` (population); empty cells where a run is missing."""
    scores = {s.fold: s.score for s in collected.scores}
    rows = []
    for fold in collected.folds:
        row = {"fold": str(fold)}
        for emotion in EMOTIONS:
            run = collected.run(fold, emotion)
            row[f"{emotion}_ccc"] = f"{run.best_val_ccc:.4f}" if run else ""
            row[f"{emotion}_epoch"] = str(run.best_epoch) if run else ""
            row[f"{emotion}_run_id"] = run.run_id if run else ""
        row["p"] = f"{scores[fold]:.4f}" if fold in scores else ""
        rows.append(row)
    p_values = [s.score for s in collected.scores]
    for name, reduce in (("mean", np.mean), ("std", np.std)):
        row = {"fold": name}
        for emotion in EMOTIONS:
            stats = collected.stats_of(emotion)
            value = None if stats is None else (stats.mean if name == "mean" else stats.std)
            row[f"{emotion}_ccc"] = "" if value is None else f"{value:.4f}"
        row["p"] = f"{float(reduce(p_values)):.4f}" if p_values else ""
        rows.append(row)
    return rows


SUMMARY_COLUMNS = (
    "fold", "valence_ccc", "valence_epoch", "arousal_ccc", "arousal_epoch", "p", "valence_run_id", "arousal_run_id",
)  # fmt: skip


def write_summary(collected: CollectedRuns, folder: Path) -> tuple[Path, Path]:
    """``summary.csv`` and ``summary.md`` in ``folder``: one row per fold, then mean and std (population).

    CSV columns: ``SUMMARY_COLUMNS`` (``p`` = (CCC_V + CCC_A)/2 where both exist).
    """
    folder = Path(folder)
    rows = _summary_rows(collected)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path, md_path = folder / "summary.csv", folder / "summary.md"
    atomic_write(csv_path, buffer.getvalue())
    atomic_write(md_path, _markdown(collected, rows))
    return csv_path, md_path


def _cell(row: Mapping[str, str], emotion: str) -> str:
    ccc, epoch = row.get(f"{emotion}_ccc", ""), row.get(f"{emotion}_epoch", "")
    return f"{ccc} (epoch {epoch})" if ccc and epoch else (ccc or "–")


def _markdown(collected: CollectedRuns, rows: Sequence[Mapping[str, str]]) -> str:
    lines = [
        f"# {_title(collected)}: best validation CCC per fold",
        "",
        "| fold | valence CCC | arousal CCC | P |",
        "|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row["fold"] in ("mean", "std"):
            continue
        lines.append(f"| {row['fold']} | {_cell(row, 'valence')} | {_cell(row, 'arousal')} | {row['p'] or '–'} |")
    mean, std = rows[-2], rows[-1]
    spread = [f"{mean[f'{e}_ccc']} ± {std[f'{e}_ccc']}" if mean.get(f"{e}_ccc") else "–" for e in EMOTIONS]
    p_cell = f"{mean['p']} ± {std['p']}" if mean["p"] else "–"
    lines.append(f"| mean ± std | {spread[0]} | {spread[1]} | {p_cell} |")
    lines += ["", "std: population standard deviation across folds. P = (CCC_valence + CCC_arousal) / 2."]
    if collected.unfinished:
        lines.append(f"Unfinished runs, not included: {', '.join(collected.unfinished)}.")
    return "\n".join(lines) + "\n"


def render_table(collected: CollectedRuns) -> Table:
    """The folds × emotions table for the terminal: best val CCC (epoch), P, and mean ± std per column."""
    from rich.table import Table

    rows = _summary_rows(collected)
    table = Table(title=f"{_title(collected)}: best validation CCC", caption=_caption(collected))
    for name in ("fold", "valence CCC", "arousal CCC", "P"):
        table.add_column(name, justify="right")
    for row in rows[:-2]:
        table.add_row(row["fold"], _cell(row, "valence"), _cell(row, "arousal"), row["p"] or "–")
    mean, std = rows[-2], rows[-1]
    cells = [f"{mean[k]} ± {std[k]}" if mean.get(k) else "–" for k in ("valence_ccc", "arousal_ccc", "p")]
    table.add_section()
    table.add_row("mean ± std", *cells, style="bold")
    return table


def _title(collected: CollectedRuns) -> str:
    return collected.stamp if collected.model == "tagf" else f"{collected.stamp} ({collected.model})"


def _caption(collected: CollectedRuns) -> str:
    caption = "std: population, across folds. P = (CCC_V + CCC_A) / 2."
    if collected.unfinished:
        caption += f" Unfinished (not included): {', '.join(collected.unfinished)}."
    return caption


# ---- TAGF beside its baselines -----------------------------------------------------------------------------------


def compare_models(output_root: Path, stamp: str) -> list[CollectedRuns]:
    """The finished runs of every model of the stamp (TAGF first, then the baselines), one collection each."""
    return [collect_runs(output_root, stamp, model) for model in models_of(output_root, stamp)]


MODEL_COLUMNS = (
    "model",
    "valence_ccc",
    "valence_std",
    "valence_folds",
    "arousal_ccc",
    "arousal_std",
    "arousal_folds",
    "p",
)


def _model_rows(collections: Sequence[CollectedRuns]) -> list[dict[str, str]]:
    """One row per model: mean and population std of the best validation CCC across its folds, and mean P."""
    rows = []
    for collected in collections:
        row = {"model": collected.model}
        for emotion in EMOTIONS:
            stats = collected.stats_of(emotion)
            row[f"{emotion}_ccc"] = f"{stats.mean:.4f}" if stats else ""
            row[f"{emotion}_std"] = f"{stats.std:.4f}" if stats else ""
            row[f"{emotion}_folds"] = str(stats.folds) if stats else "0"
        row["p"] = f"{collected.mean_score:.4f}" if collected.mean_score is not None else ""
        rows.append(row)
    return rows


def _model_cell(row: Mapping[str, str], emotion: str) -> str:
    if not row[f"{emotion}_ccc"]:
        return "–"
    folds = int(row[f"{emotion}_folds"])
    spread = f" ± {row[f'{emotion}_std']}" if folds > 1 else ""
    return f"{row[f'{emotion}_ccc']}{spread} ({folds} fold{'s' if folds > 1 else ''})"


def write_model_comparison(collections: Sequence[CollectedRuns], folder: Path) -> tuple[Path, Path]:
    """``models.csv`` (``MODEL_COLUMNS``) and ``models.md`` in ``folder``: TAGF beside each baseline."""
    rows = _model_rows(collections)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MODEL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    lines = [
        f"# {collections[0].stamp}: TAGF and baselines, best validation CCC (mean over folds)",
        "",
        "| model | valence CCC | arousal CCC | P |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['model']} | {_model_cell(r, 'valence')} | {_model_cell(r, 'arousal')} | {r['p'] or '–'} |" for r in rows
    ]
    lines += ["", "± population std across folds. P = (CCC_valence + CCC_arousal) / 2, averaged over folds with both."]
    csv_path, md_path = Path(folder) / "models.csv", Path(folder) / "models.md"
    atomic_write(csv_path, buffer.getvalue())
    atomic_write(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path


def render_model_table(collections: Sequence[CollectedRuns]) -> Table:
    """TAGF beside its baselines for the terminal: one row per model."""
    from rich.table import Table

    table = Table(
        title=f"{collections[0].stamp}: TAGF and baselines, best validation CCC",
        caption="mean ± population std across folds; P = (CCC_V + CCC_A) / 2.",
    )
    for name in ("model", "valence CCC", "arousal CCC", "P"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for row in _model_rows(collections):
        table.add_row(row["model"], _model_cell(row, "valence"), _model_cell(row, "arousal"), row["p"] or "–")
    return table


# ---- the challenge submission ----------------------------------------------------------------------------------


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
                f"emotions: run `tagf train --stamp {collected.stamp} --fold {collected.folds[0]} --emotion {emotion}`"
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


def _read_sample(path: Path) -> list[tuple[str, str, int]]:
    """``(image_location, trial, 1-based frame)`` per row of the organisers' sample file, in file order."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as e:
        raise TagfError(f"{path}: cannot read the sample file ({e.strerror})") from e
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
