"""Run trial jobs over a process pool, report each outcome, and write the manifest at the end."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preprocessing.discovery import discover_release
from preprocessing.publish import PARTIAL_FOLDER, TrialOutcome
from preprocessing.reference_import import REFERENCE_DEFAULT_FPS, import_reference_trial, read_reference_dataset
from preprocessing.trial import process_trial
from tagf_core.data.layout import write_manifest
from tagf_core.errors import TagfError

log = logging.getLogger(__name__)

OnStart = Callable[[int], None]
OnTrial = Callable[[TrialOutcome], None]


@dataclass(frozen=True)
class PreprocessReport:
    out: Path
    manifest: Path
    outcomes: tuple[TrialOutcome, ...]

    @property
    def done(self) -> list[TrialOutcome]:
        return [o for o in self.outcomes if o.status == "done"]

    @property
    def skipped(self) -> list[TrialOutcome]:
        return [o for o in self.outcomes if o.status == "skipped"]

    @property
    def failed(self) -> list[TrialOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def resolve_workers(workers: int) -> int:
    """0 means one worker per CPU core available to this process."""
    if workers > 0:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def prepare_output(out: Path) -> None:
    """Create OUT and drop the private folders a killed run may have left (never a finished trial)."""
    if out.exists() and not out.is_dir():
        raise TagfError(f"{out}: output path exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / PARTIAL_FOLDER, ignore_errors=True)


def run_jobs(
    job: Callable[..., TrialOutcome],
    arguments: Sequence[tuple[Any, ...]],
    out: Path,
    *,
    workers: int,
    on_start: OnStart | None = None,
    on_trial: OnTrial | None = None,
) -> PreprocessReport:
    """Run ``job(*args)`` for every argument tuple (in parallel when workers > 1) and write the manifest.

    Each job returns a TrialOutcome and never raises for bad input, so one bad trial cannot stop the others.
    The manifest lists the trials that are done or up to date, sorted by name.
    """
    if on_start is not None:
        on_start(len(arguments))
    outcomes: list[TrialOutcome] = []

    def collect(outcome: TrialOutcome) -> None:
        outcomes.append(outcome)
        if on_trial is not None:
            on_trial(outcome)

    count = min(resolve_workers(workers), max(1, len(arguments)))
    if count == 1:
        for args in arguments:
            collect(job(*args))
    else:
        with ProcessPoolExecutor(max_workers=count) as pool:
            futures: list[Future[TrialOutcome]] = [pool.submit(job, *args) for args in arguments]
            for future in as_completed(futures):
                collect(future.result())
    outcomes.sort(key=lambda o: o.trial)
    records = [o.record for o in outcomes if o.record is not None]
    manifest = write_manifest(out, records)
    shutil.rmtree(out / PARTIAL_FOLDER, ignore_errors=True)
    return PreprocessReport(out=out, manifest=manifest, outcomes=tuple(outcomes))


def preprocess_release(
    data_root: Path,
    out: Path,
    *,
    workers: int = 0,
    on_start: OnStart | None = None,
    on_trial: OnTrial | None = None,
) -> PreprocessReport:
    """Preprocess every trial of an Aff-Wild2 VA release (or `tagf synth` output) into ``out``."""
    release = discover_release(Path(data_root))
    out = Path(out)
    prepare_output(out)
    arguments = [(source, out) for source in release.trials]
    return run_jobs(process_trial, arguments, out, workers=workers, on_start=on_start, on_trial=on_trial)


def import_reference_dataset(
    reference_root: Path,
    out: Path,
    *,
    workers: int = 0,
    on_start: OnStart | None = None,
    on_trial: OnTrial | None = None,
) -> PreprocessReport:
    """Convert a dataset preprocessed by the reference code (``compacted_48/`` + ``dataset_info.pkl``)
    into ``out`` without recomputing anything. The reference records no frame rate: trials get
    ``REFERENCE_DEFAULT_FPS`` (30, Aff-Wild2's usual rate), with one warning."""
    dataset = read_reference_dataset(Path(reference_root))
    out = Path(out)
    prepare_output(out)
    log.warning(
        "%s: the reference records no frame rate; imported trials are marked %.0f fps",
        reference_root,
        REFERENCE_DEFAULT_FPS,
    )
    arguments = [(dataset, trial, out) for trial in dataset.trials]
    return run_jobs(import_reference_trial, arguments, out, workers=workers, on_start=on_start, on_trial=on_trial)
