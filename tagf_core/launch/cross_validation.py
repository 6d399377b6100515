"""A stamp's cross-validation on its MLflow parent run, so that the UI compares stamps: what ``collect_runs`` reads
from the finished runs' ``summary.json``, nothing computed again. ``tagf train``/``tagf resume`` log it after every
run that finishes and at the end of the launch, ``tagf collect`` when it collects; both through
``log_cross_validation``.

What the parent gets:

- metrics ``cv/ccc_<emotion>_mean`` and ``cv/ccc_<emotion>_std`` (population std across folds), ``cv/P`` (the mean
  over folds with both emotions of P = (CCC_V + CCC_A) / 2) and ``fold<K>/ccc_<emotion>`` (a run's best validation
  CCC); a baseline's under its name, e.g. ``ridge/cv/P``. Logged at step 0, and again only when a value changed
  (the UI shows the latest); a run that is gone since (``--overwrite``, unfinished) keeps its last ``fold<K>`` value;
- tags ``stamp``, ``backbone``, ``models``, ``folds`` and ``emotions`` (those with a finished run);
- the params that every child run logged with one value (the config; a child's fold and emotion are its own);
- ``summary.csv``/``summary.md`` (and ``models.csv``/``models.md`` beside baselines), written in the stamp folder and
  logged under ``collect/``, and the summary as the MLflow table ``collect/summary.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagf_core.data.layout import EMOTIONS
from tagf_core.launch.stamp_status import settle_stamp
from tagf_core.results.collect import CollectedRuns, collect_runs, compare_models
from tagf_core.results.summary import SUMMARY_COLUMNS, summary_rows, write_model_comparison, write_summary

if TYPE_CHECKING:
    from tagf_core.tracking.mlflow_tracker import MlflowSession

log = logging.getLogger(__name__)

ARTIFACT_FOLDER = "collect"
PER_RUN_PARAMS = frozenset({"data.fold", "data.emotion"})
"""Params that are a child's own, never the stamp's."""


@dataclass(frozen=True)
class CrossValidation:
    """What ``log_cross_validation`` found and wrote."""

    collections: tuple[CollectedRuns, ...]
    """One per model with a finished run, TAGF first (``compare_models``)."""
    written: tuple[Path, ...]
    """The summary files written in the stamp folder (and logged to the parent)."""


def cv_metrics(collected: CollectedRuns) -> dict[str, float]:
    """The parent's metrics for one model's runs: per emotion mean and std, P, and each fold's CCC."""
    prefix = "" if collected.model == "tagf" else f"{collected.model}/"
    metrics = {}
    for stats in collected.stats:
        metrics[f"{prefix}cv/ccc_{stats.emotion}_mean"] = stats.mean
        metrics[f"{prefix}cv/ccc_{stats.emotion}_std"] = stats.std
    if collected.mean_score is not None:
        metrics[f"{prefix}cv/P"] = collected.mean_score
    for run in collected.runs:
        metrics[f"{prefix}fold{run.fold}/ccc_{run.emotion}"] = run.best_val_ccc
    return metrics


def log_cross_validation(
    session: MlflowSession, parent_id: str, output_root: Path, stamp: str, model: str = "tagf"
) -> CrossValidation:
    """Log the stamp's finished runs on its parent run ``parent_id`` (see the module) and write its summary files.

    ``model``'s runs make ``summary.csv``/``.md`` and the table (nothing is written while it has no finished run);
    every model's runs make metrics. Nothing is logged while no run has finished.
    """
    folder = Path(output_root) / stamp
    collections = tuple(compare_models(output_root, stamp))
    if not collections:
        return CrossValidation((), ())
    parent = session.parent_tracker(parent_id)
    logged = session.client.get_run(parent_id).data
    metrics = {key: value for collected in collections for key, value in cv_metrics(collected).items()}
    changed = {key: value for key, value in metrics.items() if logged.metrics.get(key) != value}
    if changed:
        parent.log_metrics(changed, step=0)
    children = session.children(parent_id)
    parent.set_tags(_stamp_tags(stamp, collections, children))
    params = _shared_params(children, dict(logged.params))
    if params:
        parent.log_params(params)
    written: list[Path] = []
    chosen = next((c for c in collections if c.model == model), None)
    if chosen is not None:
        written += write_summary(chosen, folder)
        rows = summary_rows(chosen)
        table = {column: [row.get(column, "") for row in rows] for column in SUMMARY_COLUMNS}
        parent.log_table(table, f"{ARTIFACT_FOLDER}/summary.json")
    if len(collections) > 1:
        written += write_model_comparison(collections, folder)
    for path in written:
        parent.log_artifact(path, ARTIFACT_FOLDER)
    return CrossValidation(collections, tuple(written))


def log_cross_validation_quietly(
    session: MlflowSession, parent_id: str, output_root: Path, stamp: str, model: str = "tagf"
) -> None:
    """``log_cross_validation`` during a launch: a failure is a warning, never the end of the runs."""
    try:
        log_cross_validation(session, parent_id, output_root, stamp, model)
    except Exception:
        log.warning("could not log the cross-validation of stamp %s on its MLflow parent run", stamp, exc_info=True)


def _stamp_tags(stamp: str, collections: Sequence[CollectedRuns], children: Sequence[Any]) -> dict[str, str]:
    backbones = sorted({b for child in children if (b := child.data.tags.get("backbone"))})
    emotions = {run.emotion for collected in collections for run in collected.runs}
    return {
        "stamp": stamp,
        "backbone": ",".join(backbones),
        "models": ",".join(collected.model for collected in collections),
        "folds": ",".join(str(f) for f in sorted({f for collected in collections for f in collected.folds})),
        "emotions": ",".join(e for e in EMOTIONS if e in emotions),
    }


def _shared_params(children: Sequence[Any], existing: dict[str, str]) -> dict[str, str]:
    """The params every child with params logged with one value, less those the parent has (params never change;
    one that the children now disagree with is left as it is, with a warning)."""
    logged = [dict(child.data.params) for child in children if child.data.params]
    if not logged:
        return {}
    shared = {
        key: value
        for key, value in logged[0].items()
        if key not in PER_RUN_PARAMS and all(params.get(key) == value for params in logged[1:])
    }
    stale = sorted(
        key for key in existing if key in logged[0] and shared.get(key, existing[key] + "!") != existing[key]
    )
    if stale:
        log.warning("the parent run's params %s are no longer shared by all its child runs", ", ".join(stale))
    return {key: value for key, value in shared.items() if key not in existing}


def collect_stamp(
    session: MlflowSession, output_root: Path, stamp: str, model: str = "tagf"
) -> tuple[CollectedRuns, CrossValidation]:
    """What ``tagf collect`` does for one stamp: settle its MLflow statuses (a killed run shows KILLED, even when
    none finished), collect ``model``'s finished runs, and log the cross-validation on the parent run (made if
    there is none).

    Raises:
        TagfError: no stamp folder, or no finished run of ``model`` in it (``collect_runs``).
    """
    settle_stamp(session, stamp, Path(output_root) / stamp)
    collected = collect_runs(output_root, stamp, model)
    return collected, log_cross_validation(session, session.parent_run(stamp), output_root, stamp, model)
