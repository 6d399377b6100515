"""Run trial jobs over a process pool, report each outcome, and write the manifest at the end.

Worker processes never outlive the command. They are forked by a ``forkserver`` (started clean, so a pool made
in a process that already runs threads cannot inherit a held lock), and each watches the command's process
(``_guard_worker``): when the command dies, even by SIGKILL or the OOM killer, its workers end at once, so nothing
keeps publishing into OUT or races a re-run (the server then ends too). SIGTERM (``timeout``, ``docker stop``,
Slurm) ends the command as Ctrl-C does: queued trials are cancelled, workers stopped, finished trials kept.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from preprocessing.discovery import discover_release
from preprocessing.publish import PARTIAL_FOLDER, TrialOutcome
from preprocessing.reference_import import REFERENCE_DEFAULT_FPS, import_reference_trial, read_reference_dataset
from preprocessing.trial import process_trial
from tagf_core.data.layout import MANIFEST_NAME, write_manifest
from tagf_core.errors import TagfError

log = logging.getLogger(__name__)

OnStart = Callable[[int], None]
OnTrial = Callable[[TrialOutcome], None]


@dataclass(frozen=True)
class PreprocessReport:
    out: Path
    manifest: Path
    outcomes: tuple[TrialOutcome, ...]
    manifest_problem: str = ""
    """Why the manifest could not be written (a full or read-only disk), naming it; the outcomes still hold."""

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
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TagfError(f"{out}: cannot create the output folder ({e.strerror or e})") from e
    shutil.rmtree(out / PARTIAL_FOLDER, ignore_errors=True)


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _run_guarded(job: Callable[..., TrialOutcome], trial: str, args: tuple[Any, ...]) -> TrialOutcome:
    """Run one job in this process; never raises. Warnings logged by preprocessing while it runs are
    returned with the outcome (a worker process's log would otherwise print out of order, or be lost)."""
    logger = logging.getLogger("preprocessing")
    collector = _WarningCollector()
    logger.addHandler(collector)
    propagate, logger.propagate = logger.propagate, False
    try:
        outcome = job(*args)
    except Exception as e:  # a bug, not bad input: fail this trial only, keep the traceback for -v
        outcome = TrialOutcome(
            trial,
            "failed",
            message=f"{trial}: internal error {type(e).__name__}: {' '.join(str(e).split())} (a bug: please report it)",
            detail=traceback.format_exc(),
        )
    finally:
        logger.removeHandler(collector)
        logger.propagate = propagate
    if collector.messages:
        outcome = replace(outcome, warnings=(*collector.messages, *outcome.warnings))
    return outcome


def run_jobs(
    job: Callable[..., TrialOutcome],
    jobs: Sequence[tuple[str, tuple[Any, ...]]],
    out: Path,
    *,
    workers: int,
    on_start: OnStart | None = None,
    on_trial: OnTrial | None = None,
) -> PreprocessReport:
    """Run ``job(*args)`` for every (trial, args) pair (in parallel when workers > 1), then write the manifest.

    Bad input, a bug or a dead worker fails that trial only: the others complete, and the manifest lists
    the trials that are done or up to date, sorted by name.
    """
    if on_start is not None:
        on_start(len(jobs))
    outcomes: list[TrialOutcome] = []

    def collect(outcome: TrialOutcome) -> None:
        outcomes.append(outcome)
        if on_trial is not None:
            on_trial(outcome)

    count = min(resolve_workers(workers), max(1, len(jobs)))
    if count == 1:
        with _sigterm_interrupts():
            for trial, args in jobs:
                collect(_run_guarded(job, trial, args))
    else:
        with _worker_pool(count) as pool, _sigterm_interrupts():
            futures: dict[Future[TrialOutcome], str] = {
                pool.submit(_run_guarded, job, trial, args): trial for trial, args in jobs
            }
            for future in as_completed(futures):
                try:
                    collect(future.result())
                except BrokenProcessPool:
                    trial = futures[future]
                    message = f"{trial}: a worker process died (killed, e.g. out of memory); re-run to retry"
                    collect(TrialOutcome(trial, "failed", message=message))
    outcomes.sort(key=lambda o: o.trial)
    records = [o.record for o in outcomes if o.record is not None]
    manifest, problem = out / MANIFEST_NAME, ""
    try:
        write_manifest(out, records)
    except OSError as e:  # the trials' outcomes are still worth reporting: the caller shows both
        problem = f"{manifest}: cannot write the manifest ({e.strerror or e}); the finished trials are kept"
    shutil.rmtree(out / PARTIAL_FOLDER, ignore_errors=True)
    return PreprocessReport(out=out, manifest=manifest, outcomes=tuple(outcomes), manifest_problem=problem)


@contextmanager
def _worker_pool(count: int) -> Iterator[ProcessPoolExecutor]:
    """``count`` guarded worker processes; on any exit from the block (an interrupt included) the queued jobs are
    cancelled and the workers stopped at once, rather than waited for."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["preprocessing.trial", "preprocessing.reference_import"])  # imported once
    pool = ProcessPoolExecutor(
        max_workers=count, mp_context=context, initializer=_guard_worker, initargs=(os.getpid(),)
    )
    try:
        yield pool
    except BaseException:
        workers = list(getattr(pool, "_processes", {}).values())  # the executor has no public handle on them
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.kill()
        raise
    pool.shutdown(wait=True)


def _guard_worker(command_pid: int) -> None:
    """In each worker, at its start: a daemon thread that kills this worker as soon as the command is gone.

    The worker's parent is the fork server, not the command, so the kernel's parent-death signal cannot be used:
    the thread waits on a pidfd of the command (Linux ≥ 5.3), or checks it every second elsewhere.
    """
    try:
        pidfd: int | None = os.pidfd_open(command_pid)
    except ProcessLookupError:
        os._exit(1)  # the command died before this worker started
    except (AttributeError, OSError):
        pidfd = None
    threading.Thread(target=_end_with, args=(command_pid, pidfd), name="end-with-command", daemon=True).start()


def _end_with(command_pid: int, pidfd: int | None) -> None:
    if pidfd is not None:
        select.select([pidfd], [], [])  # readable once the command has exited
    else:
        while _alive(command_pid):
            time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread while the block runs, so it ends as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    jobs = [(source.trial, (source, out)) for source in release.trials]
    return run_jobs(process_trial, jobs, out, workers=workers, on_start=on_start, on_trial=on_trial)


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
    jobs = [(trial.trial, (dataset, trial, out)) for trial in dataset.trials]
    return run_jobs(import_reference_trial, jobs, out, workers=workers, on_start=on_start, on_trial=on_trial)
