"""The summary files of a stamp: ``summary.csv``/``summary.md`` (folds × emotions, mean ± std, P) and
``models.csv``/``models.md`` (TAGF beside its baselines), and ``comparison.csv``/``comparison.md`` of several stamps
in the output root. The rows are public so that the CLI renders the same
cells in the terminal."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from tagf_core.atomic import atomic_write
from tagf_core.data.layout import EMOTIONS
from tagf_core.results.collect import CollectedRuns


def summary_rows(collected: CollectedRuns) -> list[dict[str, str]]:
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
    rows = summary_rows(collected)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path, md_path = folder / "summary.csv", folder / "summary.md"
    atomic_write(csv_path, buffer.getvalue())
    atomic_write(md_path, _markdown(collected, rows))
    return csv_path, md_path


def fold_cell(row: Mapping[str, str], emotion: str) -> str:
    ccc, epoch = row.get(f"{emotion}_ccc", ""), row.get(f"{emotion}_epoch", "")
    return f"{ccc} (epoch {epoch})" if ccc and epoch else (ccc or "–")


def _markdown(collected: CollectedRuns, rows: Sequence[Mapping[str, str]]) -> str:
    lines = [
        f"# {title(collected)}: best validation CCC per fold",
        "",
        "| fold | valence CCC | arousal CCC | P |",
        "|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row["fold"] in ("mean", "std"):
            continue
        lines.append(
            f"| {row['fold']} | {fold_cell(row, 'valence')} | {fold_cell(row, 'arousal')} | {row['p'] or '–'} |"
        )
    mean, std = rows[-2], rows[-1]
    spread = [f"{mean[f'{e}_ccc']} ± {std[f'{e}_ccc']}" if mean.get(f"{e}_ccc") else "–" for e in EMOTIONS]
    p_cell = f"{mean['p']} ± {std['p']}" if mean["p"] else "–"
    lines.append(f"| mean ± std | {spread[0]} | {spread[1]} | {p_cell} |")
    lines += ["", "std: population standard deviation across folds. P = (CCC_valence + CCC_arousal) / 2."]
    if collected.unfinished:
        lines.append(f"Unfinished runs, not included: {', '.join(collected.unfinished)}.")
    return "\n".join(lines) + "\n"


def title(collected: CollectedRuns) -> str:
    return collected.stamp if collected.model == "tagf" else f"{collected.stamp} ({collected.model})"


def caption(collected: CollectedRuns) -> str:
    caption = "std: population, across folds. P = (CCC_V + CCC_A) / 2."
    if collected.unfinished:
        caption += f" Unfinished (not included): {', '.join(collected.unfinished)}."
    return caption


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


def model_rows(collections: Sequence[CollectedRuns]) -> list[dict[str, str]]:
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


def model_cell(row: Mapping[str, str], emotion: str) -> str:
    if not row[f"{emotion}_ccc"]:
        return "–"
    folds = int(row[f"{emotion}_folds"])
    spread = f" ± {row[f'{emotion}_std']}" if folds > 1 else ""
    return f"{row[f'{emotion}_ccc']}{spread} ({folds} fold{'s' if folds > 1 else ''})"


def write_model_comparison(collections: Sequence[CollectedRuns], folder: Path) -> tuple[Path, Path]:
    """``models.csv`` (``MODEL_COLUMNS``) and ``models.md`` in ``folder``: TAGF beside each baseline."""
    rows = model_rows(collections)
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
        f"| {r['model']} | {model_cell(r, 'valence')} | {model_cell(r, 'arousal')} | {r['p'] or '–'} |" for r in rows
    ]
    lines += ["", "± population std across folds. P = (CCC_valence + CCC_arousal) / 2, averaged over folds with both."]
    csv_path, md_path = Path(folder) / "models.csv", Path(folder) / "models.md"
    atomic_write(csv_path, buffer.getvalue())
    atomic_write(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path


STAMP_COLUMNS = (
    "stamp",
    "valence_ccc",
    "valence_std",
    "valence_folds",
    "arousal_ccc",
    "arousal_std",
    "arousal_folds",
    "p",
    "p_std",
    "p_folds",
)


def stamp_rows(collections: Sequence[CollectedRuns]) -> list[dict[str, str]]:
    """One row per stamp: the ``model_rows`` cells, and the population std and number of the folds' P."""
    rows = []
    for collected, row in zip(collections, model_rows(collections), strict=True):
        p_values = [s.score for s in collected.scores]
        rows.append(
            {
                "stamp": collected.stamp,
                **{key: value for key, value in row.items() if key != "model"},
                "p_std": f"{float(np.std(p_values)):.4f}" if p_values else "",
                "p_folds": str(len(p_values)),
            }
        )
    return rows


def stamp_p_cell(row: Mapping[str, str]) -> str:
    if not row["p"]:
        return "–"
    folds = int(row["p_folds"])
    spread = f" ± {row['p_std']}" if folds > 1 else ""
    return f"{row['p']}{spread} ({folds} fold{'s' if folds > 1 else ''})"


def write_stamp_comparison(collections: Sequence[CollectedRuns], folder: Path) -> tuple[Path, Path]:
    """``comparison.csv`` (``STAMP_COLUMNS``) and ``comparison.md`` in ``folder`` (the output root): one row per stamp,
    mean ± population std across folds of the best validation CCC per emotion, and of P."""
    rows = stamp_rows(collections)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=STAMP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    model = collections[0].model
    lines = [
        f"# Stamps compared{'' if model == 'tagf' else f' ({model})'}: best validation CCC (mean over folds)",
        "",
        "| stamp | valence CCC | arousal CCC | P |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['stamp']} | {model_cell(r, 'valence')} | {model_cell(r, 'arousal')} | {stamp_p_cell(r)} |" for r in rows
    ]
    lines += ["", "± population std across folds. P = (CCC_valence + CCC_arousal) / 2, over folds with both."]
    csv_path, md_path = Path(folder) / "comparison.csv", Path(folder) / "comparison.md"
    atomic_write(csv_path, buffer.getvalue())
    atomic_write(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path
