"""Training one fold × emotion: the reference's schedule (ref §3), tracked, checkpointed after every epoch.

Reads top to bottom, as a recipe: ``train_run`` → ``setup_run`` (setup.py) → ``_fit`` (the epoch loop) →
``finish_run`` (artifacts.py). Per epoch, in the reference's order (ref §3.5): release check at the start (§3.4),
train, validate, model selection on the overall validation CCC, early-stop counting, the plateau step, reload
of the best weights, then the checkpoint; metrics reach the tracker only after the checkpoint holds them, so a
resumed run never logs an epoch twice.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from tagf_core.atomic import atomic_write
from tagf_core.config import TagfConfig
from tagf_core.model import TAGFModel
from tagf_core.tracking.tracker import Tracker, tracked
from tagf_core.training.artifacts import finish_run, log_run_start, render_log
from tagf_core.training.batchnorm import recompute_batchnorm
from tagf_core.training.checkpoint import (
    TrainingState,
    best_record,
    capture_rng,
    load_checkpoint,
    load_torch,
    restore_rng,
    save_checkpoint,
    save_torch,
)
from tagf_core.training.evaluate import concatenate, evaluate, evaluate_partition
from tagf_core.training.loss import ccc_loss, concordance, regression_metrics
from tagf_core.training.probe import RIDGE_ALPHAS, fit_probe_path
from tagf_core.training.release import ReleaseController
from tagf_core.training.run import (
    RunPaths,
    RunResult,
    RunSpec,
    check_run_folder,
    hold_run,
    read_run_record,
    remove_temporary_files,
    run_config,
    worker_name,
    write_run_record,
)
from tagf_core.training.schedule import WarmupPlateauSchedule
from tagf_core.training.setup import EmbeddingCallbacks, RunData, RunSetup, setup_run, warn_zero_lr_epochs

log = logging.getLogger(__name__)


class TrainingCallbacks(EmbeddingCallbacks, Protocol):
    """What the CLI shows while a run trains (and, frozen, embeds its cache); the engine itself prints nothing."""

    def on_epoch_start(self, epoch: int, max_epochs: int, num_batches: int) -> None: ...
    def on_batch(self) -> None: ...
    def on_epoch_end(self, row: dict[str, float]) -> None: ...


TrackerFactory = Callable[[str | None], Tracker]
"""Given the MLflow run id of an earlier attempt (resume) or None (new run), open the run's tracker."""


def train_run(
    cfg: TagfConfig,
    spec: RunSpec,
    open_tracker: TrackerFactory,
    *,
    resume: bool = False,
    overwrite: bool = False,
    debug: bool = False,
    callbacks: TrainingCallbacks | None = None,
    launch: str = "",
    data: RunData | None = None,
    run_record: dict[str, Any] | None = None,
) -> RunResult:
    """Train (or resume) one fold × emotion run and return its best validation CCC.

    ``launch`` names the command that started this attempt; it is kept in run.json (with the host and process
    that hold the run), so a retried attempt of the same launch can tell its own run from an older one.
    ``data`` is the manifest the launch read already, ``run_record`` the run.json it read (each read here when None).

    Raises:
        TagfError: bad data, weights or run folder, checked before any training work.
    """
    cfg = run_config(cfg, spec)
    paths = RunPaths.of(cfg.train.output_root, spec)
    with hold_run(paths):  # one process per run: a second launch of the same run fails here
        check_run_folder(paths, resume=resume, overwrite=overwrite)
        checkpoint = load_checkpoint(paths.checkpoint) if resume and paths.checkpoint.exists() else None
        previous = (run_record if run_record is not None else read_run_record(paths)) if resume else {}
        debug = bool(previous.get("debug", debug))  # a resumed run keeps the trials it started with
        data = data if data is not None else RunData.read(cfg.data.processed_root)
        # bad data or weights fail here, before the folder
        setup = setup_run(cfg, spec, paths, data, debug=debug, callbacks=callbacks)
        if overwrite and paths.folder.exists():
            shutil.rmtree(paths.folder)
        paths.folder.mkdir(parents=True, exist_ok=True)
        remove_temporary_files(paths)
        tracker = open_tracker(previous.get("run_id"))
        write_run_record(paths, spec, tracker.run_id, debug=debug, launch=launch)
        state = TrainingState(run_id=tracker.run_id)
        with tracked(tracker):
            if "run_id" not in previous:
                log_run_start(tracker, setup)
            schedule, controller, optimizer, best = _restore(setup, checkpoint, state)
            _write_best(setup, best)  # best.pt as the checkpoint has it, whatever a kill left there
            started_epoch = state.next_epoch
            _sync_logged_metrics(tracker, state.history)
            if spec.probe:
                best = _fit_probe(setup, tracker, state, schedule, controller, best)
            else:
                best = _fit(setup, tracker, state, schedule, controller, optimizer, best, callbacks)
            if best is not None:
                _load_weights(setup, best["model"])
            finish_run(setup, tracker, state)
    return RunResult(
        name=spec.name, folder=paths.folder, run_id=tracker.run_id, best_val_ccc=state.best_ccc,
        best_epoch=state.best_epoch, epochs_run=state.next_epoch, stop_reason=state.stop_reason,
        started_epoch=started_epoch, worker=worker_name(),
    )  # fmt: skip


# ---- the epoch loop ---------------------------------------------------------------------------------------------


def _fit(
    setup: RunSetup,
    tracker: Tracker,
    state: TrainingState,
    schedule: WarmupPlateauSchedule,
    controller: ReleaseController,
    optimizer: torch.optim.Adam | None,
    best: dict[str, Any] | None,
    callbacks: TrainingCallbacks | None,
) -> dict[str, Any] | None:
    """The epochs from ``state.next_epoch`` on; returns the best epoch's record (``best_record``), if any."""
    train = setup.cfg.train
    train_loader = setup.loader(setup.train_set, setup.train_order)
    validate_loader = setup.loader(setup.validate_set)
    warn_zero_lr_epochs(setup.cfg, len(train_loader))
    while not state.stop_reason:
        epoch = state.next_epoch
        if epoch >= train.max_epochs:
            state.stop_reason = "max_epochs"
            break
        started = time.monotonic()
        if controller.should_release(epoch, schedule.lr, schedule.relative_epoch(epoch)):
            if controller.exhausted:
                state.stop_reason = "nothing_left_to_release"  # ref §3.4: the trigger after the last release
                break
            stage = controller.release(epoch)
            # ref §3.4: a release rebuilds Adam and the schedule, resets early stopping, reloads the best weights
            optimizer = _new_optimizer(setup)
            schedule.restart(epoch)
            state.bad_epochs = 0
            if best is not None:
                _load_weights(setup, best["model"])
            log.info("epoch %d: %s", epoch, f"released {', '.join(stage.names)}" if stage else "optimizer created")
        assert optimizer is not None, "config validation requires epoch 0 among train.milestones"
        setup.train_set.set_epoch(epoch)
        if callbacks is not None:
            callbacks.on_epoch_start(epoch, train.max_epochs, len(train_loader))
        train_loss, train_ccc = _train_epoch(setup, train_loader, optimizer, schedule, epoch, callbacks)
        if train.batchnorm_statistics == "precise":  # deviation: statistics of the weights evaluated, dropout off
            recompute_batchnorm(
                setup.model, setup.batchnorm, train_loader, setup.forward_batch, train.precise_batchnorm_batches
            )
        val_loss, predictions = evaluate(setup.model, validate_loader, setup.forward_batch)
        metrics = regression_metrics(*concatenate(setup.split.validate, predictions))
        previous_best = state.best_ccc  # the plateau compares with the best before this epoch (ref §3.3)
        improved = metrics["ccc"] > state.best_ccc
        if improved:  # ref §3.5: model selection on the overall validation CCC
            state.best_ccc, state.best_epoch, state.bad_epochs = metrics["ccc"], epoch, 0
            best = best_record(setup.cfg, setup.spec, _trainable_state(setup), epoch, metrics["ccc"])
        elif schedule.relative_epoch(epoch) > train.min_epochs:  # ref §3.5: counted only after warm-up
            state.bad_epochs += 1
        schedule.end_epoch(epoch, metrics["ccc"], previous_best)
        if train.load_best_at_each_epoch and best is not None:
            _load_weights(setup, best["model"])  # ref §3.5: greedy accept/reject; Adam state is kept
        row = {
            "epoch": float(epoch), "release_stage": float(controller.released), "lr": schedule.lr,
            "train/loss": train_loss, "train/ccc": train_ccc, "val/loss": val_loss, "val/ccc": metrics["ccc"],
            "val/rmse": metrics["rmse"], "val/pcc": metrics["pcc"], "best_epoch": float(state.best_epoch),
            "epoch_seconds": time.monotonic() - started,
        }  # fmt: skip
        state.history.append(row)
        state.next_epoch = epoch + 1
        if state.bad_epochs >= train.early_stopping:
            state.stop_reason = "early_stopping"
        _save(setup, state, schedule, controller, optimizer, best)  # the one record a resume starts from
        if improved:
            _write_best(setup, best)  # a copy, after the checkpoint that holds it
        tracker.log_metrics(_metric_row(row), step=epoch)
        if callbacks is not None:
            callbacks.on_epoch_end(row)
    _save(setup, state, schedule, controller, optimizer, best)
    return best


def _fit_probe(
    setup: RunSetup,
    tracker: Tracker,
    state: TrainingState,
    schedule: WarmupPlateauSchedule,
    controller: ReleaseController,
    best: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """A ridge probe's steps: one closed-form fit per alpha (``RIDGE_ALPHAS``), each evaluated as TAGF's epochs
    are; the best validation CCC is kept, as TAGF keeps its best epoch. Nothing is random and the whole fit takes
    seconds, so it is checkpointed once, at the end; a probe killed before that is fitted again on resume.
    Returns the best step's record (``best_record`` and its alpha)."""
    if state.stop_reason:
        return best
    best = None
    state.best_ccc, state.best_epoch, state.history = float("-inf"), -1, []
    logged = tracker.logged_steps("val/ccc")
    fits = fit_probe_path(setup.model, setup.train_set, RIDGE_ALPHAS)  # type: ignore[arg-type]
    for step, (alpha, weights) in enumerate(zip(RIDGE_ALPHAS, fits, strict=True)):
        started = time.monotonic()
        setup.model.load_state_dict(weights)
        train_loss, train_predictions = evaluate_partition(setup, "train")
        train_ccc = concordance(*concatenate(setup.split.train, train_predictions))
        val_loss, predictions = evaluate_partition(setup, "validate")
        metrics = regression_metrics(*concatenate(setup.split.validate, predictions))
        if metrics["ccc"] > state.best_ccc:
            state.best_ccc, state.best_epoch = metrics["ccc"], step
            best = {**best_record(setup.cfg, setup.spec, weights, step, metrics["ccc"]), "alpha": alpha}
        row = {
            "epoch": float(step), "release_stage": 0.0, "lr": float("nan"), "train/loss": train_loss,
            "train/ccc": train_ccc, "val/loss": val_loss, "val/ccc": metrics["ccc"], "val/rmse": metrics["rmse"],
            "val/pcc": metrics["pcc"], "best_epoch": float(state.best_epoch),
            "epoch_seconds": time.monotonic() - started,
        }  # fmt: skip
        state.history.append(row)
        state.next_epoch = step + 1
        if step not in logged:
            tracker.log_metrics({**_metric_row(row), "probe/alpha": alpha}, step=step)
    state.stop_reason = "probe_fitted"
    _save(setup, state, schedule, controller, None, best)
    _write_best(setup, best)
    return best


def _train_epoch(
    setup: RunSetup,
    loader: DataLoader[Any],
    optimizer: torch.optim.Adam,
    schedule: WarmupPlateauSchedule,
    epoch: int,
    callbacks: TrainingCallbacks | None,
) -> tuple[float, float]:
    """One pass over the training windows; returns (mean batch loss, CCC over all real training frames)."""
    setup.model.train()  # ref §1.2: the backbones too, as the reference (frozen mode never runs them)
    losses, outputs, labels = [], [], []
    for index, batch in enumerate(loader):
        schedule.lr_for_batch(epoch, index, len(loader))
        schedule.apply(optimizer)
        prediction = setup.forward_batch(batch)
        label, mask = batch["label"].to(setup.device), batch["mask"].to(setup.device)
        loss = ccc_loss(prediction, label, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        real = mask.cpu()
        outputs.append(prediction.detach().cpu()[..., 0][real].numpy())
        labels.append(batch["label"][..., 0][real].numpy())
        if callbacks is not None:
            callbacks.on_batch()
    # deviation: the reference divides the summed batch losses by the number of samples (ref §3.5)
    return float(np.mean(losses)), concordance(np.concatenate(outputs), np.concatenate(labels))


# ---- state: new or resumed, saved after every epoch -----------------------------------------------------


def _trainable_state(setup: RunSetup) -> dict[str, Tensor]:
    """The weights a checkpoint keeps: everything, except backbones that never change (frozen mode)."""
    state = setup.model.state_dict()
    if setup.frozen:
        state = {k: v for k, v in state.items() if not k.startswith(("visual_backbone.", "audio_backbone."))}
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _load_weights(setup: RunSetup, weights: dict[str, Tensor]) -> None:
    setup.model.load_state_dict(weights, strict=not setup.frozen)


def _new_optimizer(setup: RunSetup) -> torch.optim.Adam:
    # ref §3.2: Adam on every trainable tensor, coupled L2 weight decay (not AdamW)
    trainable = [p for p in setup.model.parameters() if p.requires_grad]
    return torch.optim.Adam(trainable, lr=setup.cfg.train.learning_rate, weight_decay=setup.cfg.train.weight_decay)


def _restore(
    setup: RunSetup, checkpoint: dict[str, Any] | None, state: TrainingState
) -> tuple[WarmupPlateauSchedule, ReleaseController, torch.optim.Adam | None, dict[str, Any] | None]:
    """The schedule, release controller, optimizer and best record of a new run, or as ``checkpoint`` holds them
    (``state`` is filled in place)."""
    train = setup.cfg.train
    schedule = WarmupPlateauSchedule(
        base_lr=train.learning_rate, warmup_epochs=train.min_epochs, patience=train.plateau_patience,
        factor=train.plateau_factor,
    )  # fmt: skip
    # frozen mode releases nothing: the epoch-0 milestone only creates the optimizer, the next trigger ends the run
    network = setup.model
    stages = (
        ()
        if not isinstance(network, TAGFModel) or setup.frozen or not train.gradual_release
        else network.release_stages()
    )
    controller = ReleaseController(
        stages, release_count=train.release_count if stages else 0, milestones=train.milestones,
        min_epochs=train.min_epochs, min_lr=train.min_learning_rate,
    )  # fmt: skip
    if checkpoint is None:
        return schedule, controller, None, None  # a best.pt without a checkpoint is from a killed start: dropped
    _load_weights(setup, checkpoint["model"])
    schedule.load_state_dict(checkpoint["schedule"])
    controller.load_state_dict(checkpoint["release"], stages)
    optimizer = None
    if checkpoint["optimizer"] is not None:
        optimizer = _new_optimizer(setup)
        optimizer.load_state_dict(checkpoint["optimizer"])
    saved = TrainingState.from_dict({**checkpoint["state"], "run_id": state.run_id})
    state.next_epoch, state.best_ccc, state.best_epoch = saved.next_epoch, saved.best_ccc, saved.best_epoch
    state.bad_epochs, state.history, state.stop_reason = saved.bad_epochs, saved.history, saved.stop_reason
    restore_rng(checkpoint["rng"])
    if state.stop_reason and setup.cfg.train.max_epochs > state.next_epoch and state.stop_reason == "max_epochs":
        state.stop_reason = ""  # --max-epochs extends a run that ended on the old limit
    best = checkpoint["best"] if "best" in checkpoint else _version_1_best(setup)
    return schedule, controller, optimizer, best


def _version_1_best(setup: RunSetup) -> dict[str, Any] | None:
    """A version-1 checkpoint (tagf before 0.x) kept its best weights in best.pt alone."""
    return load_torch(setup.paths.best, "best weights") if setup.paths.best.exists() else None


def _sync_logged_metrics(tracker: Tracker, history: Sequence[dict[str, float]]) -> None:
    """Log the checkpointed epochs the tracker misses (killed between checkpoint and logging), never twice."""
    if not history:
        return
    logged = tracker.logged_steps("val/ccc")
    for row in history:
        if int(row["epoch"]) not in logged:
            tracker.log_metrics(_metric_row(row), step=int(row["epoch"]))


def _metric_row(row: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k not in ("epoch", "best_epoch") and np.isfinite(v)}


def _save(
    setup: RunSetup,
    state: TrainingState,
    schedule: WarmupPlateauSchedule,
    controller: ReleaseController,
    optimizer: torch.optim.Adam | None,
    best: dict[str, Any] | None,
) -> None:
    """checkpoint.pt, then training_log.csv: the checkpoint alone is the run's state (the log is rewritten from it)."""
    save_checkpoint(
        setup.paths.checkpoint,
        {
            "model": _trainable_state(setup),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "schedule": schedule.state_dict(),
            "release": controller.state_dict(),
            "state": state.to_dict(),
            "rng": capture_rng(),
            "spec": dict(setup.spec.__dict__),
            "best": best,
        },
    )
    atomic_write(setup.paths.log, render_log(state.history))


def _write_best(setup: RunSetup, best: dict[str, Any] | None) -> None:
    """best.pt: a copy of the checkpoint's best record (``predict`` and the tracker read it), or none yet."""
    if best is None:
        setup.paths.best.unlink(missing_ok=True)
    else:
        save_torch(setup.paths.best, best)
