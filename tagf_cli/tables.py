"""The stamp's tables in the terminal (rich): the same cells as summary.md and models.md."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from tagf_core.results.collect import CollectedRuns
from tagf_core.results.summary import (
    caption,
    fold_cell,
    model_cell,
    model_rows,
    stamp_p_cell,
    stamp_rows,
    summary_rows,
    title,
)


def render_table(collected: CollectedRuns) -> Table:
    """The folds × emotions table for the terminal: best val CCC (epoch), P, and mean ± std per column."""
    rows = summary_rows(collected)
    table = Table(title=f"{title(collected)}: best validation CCC", caption=caption(collected))
    for name in ("fold", "valence CCC", "arousal CCC", "P"):
        table.add_column(name, justify="right")
    for row in rows[:-2]:
        table.add_row(row["fold"], fold_cell(row, "valence"), fold_cell(row, "arousal"), row["p"] or "–")
    mean, std = rows[-2], rows[-1]
    cells = [f"{mean[k]} ± {std[k]}" if mean.get(k) else "–" for k in ("valence_ccc", "arousal_ccc", "p")]
    table.add_section()
    table.add_row("mean ± std", *cells, style="bold")
    return table


def render_model_table(collections: Sequence[CollectedRuns]) -> Table:
    """TAGF beside its baselines for the terminal: one row per model."""
    table = Table(
        title=f"{collections[0].stamp}: TAGF and baselines, best validation CCC",
        caption="mean ± population std across folds; P = (CCC_V + CCC_A) / 2.",
    )
    for name in ("model", "valence CCC", "arousal CCC", "P"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for row in model_rows(collections):
        table.add_row(row["model"], model_cell(row, "valence"), model_cell(row, "arousal"), row["p"] or "–")
    return table


def render_stamp_table(collections: Sequence[CollectedRuns]) -> Table:
    """Several stamps side by side for the terminal: one row per stamp, as comparison.md."""
    model = collections[0].model
    table = Table(
        title=f"Stamps compared{'' if model == 'tagf' else f' ({model})'}: best validation CCC",
        caption="mean ± population std across folds; P = (CCC_V + CCC_A) / 2.",
    )
    for name in ("stamp", "valence CCC", "arousal CCC", "P"):
        table.add_column(name, justify="left" if name == "stamp" else "right")
    for row in stamp_rows(collections):
        table.add_row(row["stamp"], model_cell(row, "valence"), model_cell(row, "arousal"), stamp_p_cell(row))
    return table
