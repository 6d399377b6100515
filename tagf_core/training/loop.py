"""Training one fold × emotion: the reference's schedule (ref §3), tracked, checkpointed after every epoch.

Reads top to bottom: ``train_run`` → ``_setup`` → ``_fit`` (the epoch loop you can see) → ``_finish``.
Per epoch, in the reference's order (ref §3.5): release check at the start (§3.4), train, validate, model
selection on the overall validation CCC, early-stop counting, the plateau step, reload of the best weights,
then the checkpoint; metrics reach the tracker only after the checkpoint holds them, so a resumed run
never logs an epoch twice.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import random
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from tagf_core.atomic import atomic_write
from tagf_core.config import TagfConfig, config_to_toml
from tagf_core.data.dataset import WindowDataset
from tagf_core.data.embeddings import EmbeddingWindowDataset, build_embedding_cache
from tagf_core.data.folds import FoldSplit, split_fold
from tagf_core.data.layout import FRAMES_FILE, MANIFEST_NAME, TrialRecord, read_manifest
from tagf_core.data.windows import Window, average_window_predictions
from tagf_core.errors import TagfError
from tagf_core.model import TAGFModel, build_tagf_from_config
from tagf_core.model.probe import RidgeProbe
from tagf_core.model.reference_weights import load_backbone_weights
from tagf_core.model.tagf import Fusion
from tagf_core.tracking.tracker import Tracker, tracked
from tagf_core.training.batchnorm import batchnorm_layers, recompute_batchnorm
from tagf_core.training.checkpoint import (
    capture_rng,
    load_checkpoint,
    load_torch,
    restore_rng,
    save_checkpoint,
    save_torch,
)
from tagf_core.training.loss import ccc_loss, concordance, regression_metrics
from tagf_core.training.probe import RIDGE_ALPHAS, fit_probe_path
from tagf_core.training.release import ReleaseController
from tagf_core.training.run import PROBE_MODALITIES, RunPaths, RunSpec, run_config
from tagf_core.training.schedule import WarmupPlateauSchedule

log = logging.getLogger(__name__)

VISUAL_WEIGHTS, AUDIO_WEIGHTS = "res50_ir_0.887.pth", "vggish.pth"
CUDA_LOADER_WORKERS = 4  # data.num_workers = auto on CUDA: a GPU step is short enough for the loader to matter
LOG_COLUMNS = (
    "epoch", "release_stage", "lr", "train/loss", "train/ccc", "val/loss", "val/ccc", "val/rmse", "val/pcc",
    "best_epoch", "epoch_seconds",
)  # fmt: skip


class TrainingCallbacks(Protocol):
    """What the CLI shows while a run trains; the engine itself prints nothing."""

    def on_epoch_start(self, epoch: int, max_epochs: int, num_batches: int) -> None: ...
    def on_batch(self) -> None: ...
    def on_epoch_end(self, row: dict[str, float]) -> None: ...


RunDataset = WindowDataset | EmbeddingWindowDataset
"""Images through the backbones (release mode) or cached embeddings (frozen mode): the same windows."""

TrackerFactory = Callable[[str | None], Tracker]
"""Given the MLflow run id of an earlier attempt (resume) or None (new run), open the run's tracker."""


@dataclass
class RunResult:
    paths: RunPaths
    run_id: str
    best_val_ccc: float
    best_epoch: int
    epochs_run: int
    stop_reason: str
    started_epoch: int = 0
    """The epoch this call began with: 0 for a new run, the checkpoint's next epoch for a resumed one."""


@dataclass
class _State:
    """Everything of a run besides the weights that a resume must restore."""

    next_epoch: int = 0
    best_ccc: float = float("-inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stop_reason: str = ""
    run_id: str = ""
    """The MLflow run this training is logged to (also in run.json, written before the first epoch)."""


@dataclass
class _Setup:
    cfg: TagfConfig
    spec: RunSpec
    paths: RunPaths
    model: TAGFModel | RidgeProbe
    """TAGF or the concat baseline (a TAGFModel), or a ridge probe."""
    device: torch.device
    split: FoldSplit
    records: dict[str, TrialRecord]
    train_set: RunDataset
    validate_set: RunDataset
    extra_set: RunDataset
    train_order: list[int]
    frozen: bool
    forward: Callable[..., Tensor]
    """The model's forward for a batch (``forward_from_embeddings`` in frozen mode), compiled if train.compile."""
    batchnorm: list[nn.modules.batchnorm._BatchNorm]
    """The BatchNorm layers the forward runs (not the backbones' in frozen mode): what precise statistics recompute."""


# ---- entry point ------------------------------------------------------------------------------------------


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
) -> RunResult:
    """Train (or resume) one fold × emotion run and return its best validation CCC.

    ``launch`` names the command that started this attempt; it is kept in run.json (with the host and process
    that hold the run), so a retried attempt of the same launch can tell its own run from an older one.

    Raises:
        TagfError: bad data, weights or run folder, checked before any training work.
    """
    cfg = run_config(cfg, spec)
    paths = RunPaths.of(cfg.train.output_root, spec)
    _check_run_folder(paths, resume=resume, overwrite=overwrite)
    checkpoint = load_checkpoint(paths.checkpoint) if resume and paths.checkpoint.exists() else None
    previous = _previous_record(paths) if resume else {}
    debug = bool(previous.get("debug", debug))  # a resumed run keeps the trials it started with
    setup = _setup(cfg, spec, paths, debug)  # bad data or weights fail here, before the run folder is touched
    if overwrite and paths.folder.exists():
        shutil.rmtree(paths.folder)
    paths.folder.mkdir(parents=True, exist_ok=True)
    tracker = open_tracker(previous.get("run_id"))
    record = {
        "run_id": tracker.run_id, "debug": debug, **spec.__dict__,
        "launch": launch, "host": socket.gethostname(), "pid": os.getpid(),
    }  # fmt: skip
    atomic_write(paths.run_record, json.dumps(record) + "\n")
    run_id = previous.get("run_id")
    state = _State(run_id=tracker.run_id)
    with tracked(tracker):
        if run_id is None:
            _log_run_start(tracker, setup)
        schedule, controller, optimizer = _restore(setup, checkpoint, state)
        started_epoch = state.next_epoch
        _sync_logged_metrics(tracker, state.history)
        if isinstance(setup.model, RidgeProbe):
            _fit_probe(setup, tracker, state, schedule, controller)
        else:
            _fit(setup, tracker, state, schedule, controller, optimizer, callbacks)
        _finish(setup, tracker, state)
    return RunResult(
        paths, tracker.run_id, state.best_ccc, state.best_epoch, state.next_epoch, state.stop_reason, started_epoch
    )


# ---- setup --------------------------------------------------------------------------------------------------


def _check_run_folder(paths: RunPaths, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start over an existing run (unless overwriting) and to resume a run that does not exist."""
    if paths.folder.exists() and not resume and not overwrite:
        raise TagfError(
            f"{paths.folder}: a run with this stamp, fold and emotion exists; continue it with `tagf resume` "
            "(or `tagf train --resume`), or start it again with --overwrite"
        )
    if resume and not paths.run_record.exists():
        raise TagfError(f"{paths.folder}: no run to resume here (start it with `tagf train`)")


def launch_of(paths: RunPaths) -> str | None:
    """The launch that last started or resumed the run in ``paths`` (see ``train_run``), or None if there is none."""
    if not paths.run_record.exists():
        return None
    return str(_previous_record(paths).get("launch", ""))


def _previous_record(paths: RunPaths) -> dict[str, Any]:
    try:
        record = json.loads(paths.run_record.read_text())
        str(record["run_id"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TagfError(f"{paths.run_record}: unreadable run record ({e})") from e
    return dict(record)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise TagfError(f"train.device {name!r} is not a torch device ({e})") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TagfError(f"train.device {name!r}: CUDA is not available on this machine")
    return device


def seed_everything(seed: int) -> None:
    """ref §3.6: random, numpy and torch seeded before the model and the loaders are built."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def build_model(cfg: TagfConfig, spec: RunSpec | None = None) -> TAGFModel:
    """The network of a run (TAGF, or the concat baseline for ``spec.model == "concat"``): config sizes, and the
    backbone weight files of ``train.weights_dir`` if given. A probe's backbones are this model's too."""
    fusion: Fusion = "concat" if spec is not None and spec.model == "concat" else "tagf"
    model = build_tagf_from_config(cfg.model, cfg.data.window_len, fusion)
    weights = cfg.train.weights_dir
    if weights is not None and not Path(weights).is_dir():
        raise TagfError(f"{weights}: weights folder not found (train.weights_dir / --weights-dir)")
    visual = Path(weights) / VISUAL_WEIGHTS if weights else None
    audio = Path(weights) / AUDIO_WEIGHTS if weights else None
    load_backbone_weights(
        model, visual if visual and visual.exists() else None, audio if audio and audio.exists() else None
    )
    return model


def _setup(cfg: TagfConfig, spec: RunSpec, paths: RunPaths, debug: bool) -> _Setup:
    root = cfg.data.processed_root
    records = {r.trial: r for r in read_manifest(root)}
    split = split_fold(list(records.values()), spec.fold, debug=debug)
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    model = build_model(cfg, spec).to(device)  # on the device before the frozen backbones embed the cache
    frozen = cfg.train.backbone == "frozen"
    emotion, window_len, hop_len = spec.emotion, cfg.data.window_len, cfg.data.hop_len
    if frozen:
        cache = _embedding_cache(
            cfg, model, [records[t] for t in (*split.train, *split.validate, *split.extra)], device
        )

        def dataset(trials: Sequence[str], train: bool) -> RunDataset:
            return EmbeddingWindowDataset(cache, root, trials, emotion=emotion, window_len=window_len, hop_len=hop_len)
    else:

        def dataset(trials: Sequence[str], train: bool) -> RunDataset:
            seed = cfg.train.seed if train else None  # crops from (seed, epoch, window): exact on resume
            return WindowDataset(
                root, trials, emotion=emotion, train=train, window_len=window_len, hop_len=hop_len,
                crop_size=cfg.data.crop_size, seed=seed,
            )  # fmt: skip

    train_set = dataset(split.train, True)
    # ref §2.5: the training windows are shuffled once, after seeding; every epoch sees this order
    train_order = list(range(len(train_set)))  # type: ignore[arg-type]
    random.Random(cfg.train.seed).shuffle(train_order)
    run_model: TAGFModel | RidgeProbe = model
    forward: Callable[..., Tensor] = model.forward_from_embeddings if frozen else model
    if spec.probe:  # the backbones have embedded the cache; the run fits a probe on it
        run_model = RidgeProbe(PROBE_MODALITIES[spec.model]).to(device)
        forward = run_model
    elif cfg.train.compile:
        forward = torch.compile(forward)
    return _Setup(
        cfg=cfg,
        spec=spec,
        paths=paths,
        model=run_model,
        device=device,
        split=split,
        records=records,
        train_set=train_set,
        validate_set=dataset(split.validate, False),
        extra_set=dataset(split.extra, False),
        train_order=train_order,
        frozen=frozen,
        forward=forward,
        batchnorm=batchnorm_layers(run_model, skip=(model.visual_backbone, model.audio_backbone) if frozen else ()),
    )


def _embedding_cache(cfg: TagfConfig, model: TAGFModel, records: Sequence[TrialRecord], device: torch.device) -> Path:
    return build_embedding_cache(
        cfg.data.processed_root, model, records, batch_size=cfg.train.embedding_batch_size, device=device,
        on_trial=lambda trial: log.info("embedded %s (frozen backbones, cached for later runs)", trial),
    )  # fmt: skip


def prepare_embedding_caches(cfg: TagfConfig, folds: Sequence[int], *, debug: bool = False) -> list[Path]:
    """Build the frozen-backbone embedding cache the runs of ``folds`` will read, once, before they start.

    The runs would build it themselves; started together on many machines, each would embed the whole dataset.
    """
    records = {r.trial: r for r in read_manifest(cfg.data.processed_root)}
    splits = [split_fold(list(records.values()), fold, debug=debug) for fold in folds]
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)  # as a run does: randomly initialised backbones then get the runs' weights
    model = build_model(cfg).to(device)
    caches: list[Path] = []
    for split in splits:
        needed = [records[t] for t in (*split.train, *split.validate, *split.extra)]
        caches.append(_embedding_cache(cfg, model, needed, device))  # the same trials reuse the first fold's cache
    return caches


def _log_run_start(tracker: Tracker, setup: _Setup) -> None:
    cfg = setup.cfg
    atomic_write(setup.paths.config, config_to_toml(cfg))
    tracker.log_params(_flatten(cfg.model_dump(mode="json")))
    tracker.log_artifact(setup.paths.config)
    manifest = cfg.data.processed_root / MANIFEST_NAME
    tracker.log_dataset("processed", _file_digest(manifest), str(manifest.resolve()))


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _file_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- state: new or resumed ------------------------------------------------------------------------------------


def _trainable_state(setup: _Setup) -> dict[str, Tensor]:
    """The weights a checkpoint keeps: everything, except backbones that never change (frozen mode)."""
    state = setup.model.state_dict()
    if setup.frozen:
        state = {k: v for k, v in state.items() if not k.startswith(("visual_backbone.", "audio_backbone."))}
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _load_weights(setup: _Setup, weights: dict[str, Tensor]) -> None:
    setup.model.load_state_dict(weights, strict=not setup.frozen)


def _new_optimizer(setup: _Setup) -> torch.optim.Adam:
    # ref §3.2: Adam on every trainable tensor, coupled L2 weight decay (not AdamW)
    trainable = [p for p in setup.model.parameters() if p.requires_grad]
    return torch.optim.Adam(trainable, lr=setup.cfg.train.learning_rate, weight_decay=setup.cfg.train.weight_decay)


def _restore(
    setup: _Setup, checkpoint: dict[str, Any] | None, state: _State
) -> tuple[WarmupPlateauSchedule, ReleaseController, torch.optim.Adam | None]:
    train = setup.cfg.train
    schedule = WarmupPlateauSchedule(
        train.learning_rate, train.min_epochs, train.plateau_patience, train.plateau_factor
    )
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
        return schedule, controller, None
    _load_weights(setup, checkpoint["model"])
    schedule.load_state_dict(checkpoint["schedule"])
    controller.load_state_dict(checkpoint["release"], stages)
    optimizer = None
    if checkpoint["optimizer"] is not None:
        optimizer = _new_optimizer(setup)
        optimizer.load_state_dict(checkpoint["optimizer"])
    saved = checkpoint["state"]
    state.next_epoch, state.best_ccc, state.best_epoch = saved["next_epoch"], saved["best_ccc"], saved["best_epoch"]
    state.bad_epochs, state.history, state.stop_reason = saved["bad_epochs"], saved["history"], saved["stop_reason"]
    restore_rng(checkpoint["rng"])
    if state.stop_reason and setup.cfg.train.max_epochs > state.next_epoch and state.stop_reason == "max_epochs":
        state.stop_reason = ""  # --max-epochs extends a run that ended on the old limit
    return schedule, controller, optimizer


def _sync_logged_metrics(tracker: Tracker, history: Sequence[dict[str, float]]) -> None:
    """Log the checkpointed epochs the tracker misses (killed between checkpoint and logging), never twice."""
    if not history:
        return
    logged = tracker.logged_steps("val/ccc")
    for row in history:
        if int(row["epoch"]) not in logged:
            tracker.log_metrics(_metric_row(row), step=int(row["epoch"]))


# ---- the epoch loop ---------------------------------------------------------------------------------------------


def _loader(setup: _Setup, dataset: Dataset[Any], order: list[int] | None = None) -> DataLoader[Any]:
    return window_loader(dataset, setup.cfg, setup.device, order)


def window_loader(
    dataset: Dataset[Any], cfg: TagfConfig, device: torch.device, order: list[int] | None = None
) -> DataLoader[Any]:
    """The batches a run trains and evaluates on: ``order`` is a fixed list of window indices (the reference's
    once-shuffled order, ref §2.5) or None (in order); ``data.num_workers`` processes read them.

    Workers are started afresh each epoch (not persistent), so they see the epoch ``set_epoch`` selected.
    """
    return DataLoader(
        dataset,
        batch_size=cfg.train.batch_size,
        sampler=order,
        shuffle=False,
        num_workers=loader_workers(cfg, device),
        pin_memory=device.type == "cuda",
    )


def loader_workers(cfg: TagfConfig, device: torch.device) -> int:
    """``data.num_workers``, with ``auto`` resolved for ``device``."""
    if isinstance(cfg.data.num_workers, int):
        return cfg.data.num_workers
    return min(CUDA_LOADER_WORKERS, os.cpu_count() or 1) if device.type == "cuda" else 0


def _forward(setup: _Setup, batch: dict[str, Any]) -> Tensor:
    return forward_batch(
        setup.forward, batch, setup.device, frozen=setup.frozen, bf16=setup.cfg.train.precision == "bf16"
    )


def forward_batch(
    forward: Callable[..., Tensor], batch: dict[str, Any], device: torch.device, *, frozen: bool, bf16: bool
) -> Tensor:
    """Predictions B×L×1 in float32 for a batch: ``forward`` is the model (release) or its
    ``forward_from_embeddings`` (frozen), run under bfloat16 autocast when ``bf16``."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        if frozen:
            video, audio = batch["video_embeddings"], batch["audio_embeddings"]
            prediction = forward(video.to(device, non_blocking=True), audio.to(device, non_blocking=True))
        else:
            video, logmel = batch["video"], batch["logmel"]
            prediction = forward(video=video.to(device, non_blocking=True), logmel=logmel.to(device, non_blocking=True))
    return prediction.float()


def _fit(
    setup: _Setup,
    tracker: Tracker,
    state: _State,
    schedule: WarmupPlateauSchedule,
    controller: ReleaseController,
    optimizer: torch.optim.Adam | None,
    callbacks: TrainingCallbacks | None,
) -> None:
    train = setup.cfg.train
    best_weights = load_torch(setup.paths.best, "best weights")["model"] if setup.paths.best.exists() else None
    train_loader = _loader(setup, setup.train_set, setup.train_order)
    validate_loader = _loader(setup, setup.validate_set)
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
            if best_weights is not None:
                _load_weights(setup, best_weights)
            log.info("epoch %d: %s", epoch, f"released {', '.join(stage.names)}" if stage else "optimizer created")
        assert optimizer is not None, "config validation requires epoch 0 among train.milestones"
        setup.train_set.set_epoch(epoch)
        if callbacks is not None:
            callbacks.on_epoch_start(epoch, train.max_epochs, len(train_loader))
        train_loss, train_ccc = _train_epoch(setup, train_loader, optimizer, schedule, epoch, callbacks)
        if train.batchnorm_statistics == "precise":  # deviation: statistics of the weights evaluated, dropout off
            recompute_batchnorm(
                setup.model,
                setup.batchnorm,
                train_loader,
                lambda b: _forward(setup, b),
                train.precise_batchnorm_batches,
            )
        val_loss, predictions = evaluate(setup.model, validate_loader, lambda b: _forward(setup, b))
        metrics = regression_metrics(*_concatenate(list(setup.split.validate), predictions))
        previous_best = state.best_ccc  # the plateau compares with the best before this epoch (ref §3.3)
        if metrics["ccc"] > state.best_ccc:  # ref §3.5: model selection on the overall validation CCC
            state.best_ccc, state.best_epoch, state.bad_epochs = metrics["ccc"], epoch, 0
            best_weights = _trainable_state(setup)
            save_torch(setup.paths.best, {"model": best_weights, "epoch": epoch, "val_ccc": metrics["ccc"]})
        elif schedule.relative_epoch(epoch) > train.min_epochs:  # ref §3.5: counted only after warm-up
            state.bad_epochs += 1
        schedule.end_epoch(epoch, metrics["ccc"], previous_best)
        if train.load_best_at_each_epoch and best_weights is not None:
            _load_weights(setup, best_weights)  # ref §3.5: greedy accept/reject; Adam state is kept
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
        _save(setup, state, schedule, controller, optimizer)
        tracker.log_metrics(_metric_row(row), step=epoch)
        if callbacks is not None:
            callbacks.on_epoch_end(row)
    _save(setup, state, schedule, controller, optimizer)


def _fit_probe(
    setup: _Setup,
    tracker: Tracker,
    state: _State,
    schedule: WarmupPlateauSchedule,
    controller: ReleaseController,
) -> None:
    """A ridge probe's steps: one closed-form fit per alpha (``RIDGE_ALPHAS``), each evaluated as TAGF's epochs
    are; the best validation CCC is kept, as TAGF keeps its best epoch. Nothing is random and the whole fit takes
    seconds, so it is checkpointed once, at the end; a probe killed before that is fitted again on resume."""
    if state.stop_reason:
        return
    state.best_ccc, state.best_epoch, state.history = float("-inf"), -1, []
    logged = tracker.logged_steps("val/ccc")
    forward = lambda batch: _forward(setup, batch)  # noqa: E731
    fits = fit_probe_path(setup.model, setup.train_set, RIDGE_ALPHAS)  # type: ignore[arg-type]
    for step, (alpha, weights) in enumerate(zip(RIDGE_ALPHAS, fits, strict=True)):
        started = time.monotonic()
        setup.model.load_state_dict(weights)
        train_loss, train_predictions = evaluate(setup.model, _loader(setup, setup.train_set), forward)
        train_ccc = concordance(*_concatenate(list(setup.split.train), train_predictions))
        val_loss, predictions = evaluate(setup.model, _loader(setup, setup.validate_set), forward)
        metrics = regression_metrics(*_concatenate(list(setup.split.validate), predictions))
        if metrics["ccc"] > state.best_ccc:
            state.best_ccc, state.best_epoch = metrics["ccc"], step
            save_torch(setup.paths.best, {"model": weights, "epoch": step, "val_ccc": metrics["ccc"], "alpha": alpha})
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
    _save(setup, state, schedule, controller, None)


def _train_epoch(
    setup: _Setup,
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
        lr = schedule.lr_for_batch(epoch, index, len(loader))
        for group in optimizer.param_groups:
            group["lr"] = lr
        prediction = _forward(setup, batch)
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


def evaluate(
    model: nn.Module, loader: DataLoader[Any], forward: Callable[[dict[str, Any]], Tensor]
) -> tuple[float, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Eval-mode predictions of every trial, overlapping windows averaged per frame (ref §2.7, §3.5).

    Returns (mean window loss, trial → (T predictions, T labels)).
    """
    model.eval()
    losses: list[float] = []
    rows: list[np.ndarray] = []
    label_rows: list[np.ndarray] = []
    windows: list[Window] = []
    with torch.no_grad():
        for batch in loader:
            prediction = forward(batch)
            mask = batch["mask"].to(prediction.device)
            losses.append(float(ccc_loss(prediction, batch["label"].to(prediction.device), mask)))
            rows.append(prediction[..., 0].cpu().numpy())
            label_rows.append(batch["label"][..., 0].numpy())
            windows += [
                Window(trial, int(start), int(length))
                for trial, start, length in zip(batch["trial"], batch["start"], batch["length"], strict=True)
            ]
    if not windows:
        return float("nan"), {}
    predictions = average_window_predictions(np.concatenate(rows), windows)
    labels = average_window_predictions(np.concatenate(label_rows), windows)
    return float(np.mean(losses)), {trial: (predictions[trial], labels[trial]) for trial in predictions}


def _concatenate(
    trials: Sequence[str], predictions: dict[str, tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """ref §4: "overall" = all validation trials concatenated, in the fold's order (``trials``)."""
    order = [t for t in trials if t in predictions]
    return (
        np.concatenate([predictions[t][0] for t in order]),
        np.concatenate([predictions[t][1] for t in order]),
    )


def _metric_row(row: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k not in ("epoch", "best_epoch") and np.isfinite(v)}


def _save(
    setup: _Setup,
    state: _State,
    schedule: WarmupPlateauSchedule,
    controller: ReleaseController,
    optimizer: torch.optim.Adam | None,
) -> None:
    save_checkpoint(
        setup.paths.checkpoint,
        {
            "model": _trainable_state(setup),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "schedule": schedule.state_dict(),
            "release": controller.state_dict(),
            "state": {
                "next_epoch": state.next_epoch,
                "best_ccc": state.best_ccc,
                "best_epoch": state.best_epoch,
                "bad_epochs": state.bad_epochs,
                "history": state.history,
                "stop_reason": state.stop_reason,
                "run_id": state.run_id,
            },  # fmt: skip
            "rng": capture_rng(),
            "spec": dict(setup.spec.__dict__),
        },
    )
    atomic_write(setup.paths.log, _render_log(state.history))


def _render_log(history: Sequence[dict[str, float]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(LOG_COLUMNS)
    for row in history:
        writer.writerow(
            [int(row[c]) if c in ("epoch", "release_stage", "best_epoch") else f"{row[c]:.6g}" for c in LOG_COLUMNS]
        )
    return buffer.getvalue()


# ---- the end of a run ---------------------------------------------------------------------------------------------


def _finish(setup: _Setup, tracker: Tracker, state: _State) -> None:
    """Best weights back in; validation and unseen-partition predictions, plots, summary, model; all tracked."""
    from tagf_core.tracking.plots import plot_curves, plot_prediction

    paths = setup.paths
    if paths.best.exists():
        _load_weights(setup, load_torch(paths.best, "best weights")["model"])
    write_predictions(setup, "validate")
    write_predictions(setup, "extra")
    plot_curves(state.history, paths.plots / "curves.png")
    validate_dir = paths.predictions("validate")
    for trial in list(setup.split.validate)[:3]:
        table = np.loadtxt(validate_dir / f"{trial}.csv", delimiter=",", skiprows=1, ndmin=2)
        plot_prediction(
            trial, table[:, 0], table[:, 1], table[:, 2], setup.spec.emotion, paths.plots / f"validate_{trial}.png"
        )
    summary = {
        "stamp": setup.spec.stamp, "fold": setup.spec.fold, "emotion": setup.spec.emotion, "model": setup.spec.model,
        "backbone": setup.cfg.train.backbone, "best_val_ccc": state.best_ccc, "best_epoch": state.best_epoch,
        "epochs": state.next_epoch, "stop_reason": state.stop_reason, "run_id": tracker.run_id,
    }  # fmt: skip
    atomic_write(paths.summary, json.dumps(summary, indent=2) + "\n")
    tracker.log_metrics({"best/val_ccc": state.best_ccc, "best/epoch": float(state.best_epoch)}, step=state.next_epoch)
    artifacts = [
        (paths.log, None), (paths.summary, None), (paths.plots, "plots"),
        (paths.folder / "predictions", "predictions"), (paths.best, "weights"),
    ]  # fmt: skip
    for artifact, folder in artifacts:
        tracker.log_artifact(artifact, folder)
    _log_model(setup, tracker)
    log.info(
        "%s: best validation CCC %.4f at epoch %d (%s)",
        setup.spec.name,
        state.best_ccc,
        state.best_epoch,
        state.stop_reason,
    )


def _log_model(setup: _Setup, tracker: Tracker) -> None:
    """The trained network as an MLflow model: the whole model in release mode, the part after the backbones
    in frozen mode and the probe itself (what was trained; the backbones are the weight files given)."""
    model = setup.model.eval().cpu()
    length = setup.cfg.data.window_len
    if setup.frozen:
        example = {"video_embeddings": torch.zeros(1, length, 512), "audio_embeddings": torch.zeros(1, length, 128)}
        tracker.log_model(EmbeddingsModel(model) if isinstance(model, TAGFModel) else model, example, "model")
    else:
        example = {"video": torch.zeros(1, length, 3, 40, 40), "logmel": torch.zeros(1, length, 96, 64)}
        tracker.log_model(model, example, "model")
    model.to(setup.device)


class EmbeddingsModel(nn.Module):
    """A TAGF model seen from after its backbones: (video_embeddings B×L×512, audio_embeddings B×L×128) → B×L×1."""

    def __init__(self, model: TAGFModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, video_embeddings: Tensor, audio_embeddings: Tensor) -> Tensor:
        return self.model.forward_from_embeddings(video_embeddings, audio_embeddings)


def write_predictions(setup: _Setup, partition: str) -> Path:
    """Per-trial predictions of ``partition`` with the current weights.

    validate → ``<trial>.csv`` with ``frame,label,prediction`` (frame = 1-based video frame number);
    extra → ``<trial>.txt`` in the reference's format: the emotion's name, then one value per frame (ref §2.7).
    """
    dataset = setup.validate_set if partition == "validate" else setup.extra_set
    folder = setup.paths.predictions(partition)
    folder.mkdir(parents=True, exist_ok=True)
    _, predictions = evaluate(setup.model, _loader(setup, dataset), lambda b: _forward(setup, b))
    root = setup.cfg.data.processed_root
    for trial, (prediction, label) in predictions.items():
        if partition == "validate":
            frames = np.load(root / trial / FRAMES_FILE) + 1
            lines = ["frame,label,prediction"] + [
                f"{int(f)},{lab:.6f},{p:.6f}" for f, lab, p in zip(frames, label, prediction, strict=True)
            ]
        else:
            lines = [setup.spec.emotion] + [f"{p:.6f}" for p in prediction]
        suffix = ".csv" if partition == "validate" else ".txt"
        atomic_write(folder / f"{trial}{suffix}", "\n".join(lines) + "\n")
    return folder


def predict_run(cfg: TagfConfig, spec: RunSpec, partition: str) -> Path:
    """Write a trained run's predictions for ``partition`` (validate or extra) again, from its best weights."""
    cfg = run_config(cfg, spec)
    paths = RunPaths.of(cfg.train.output_root, spec)
    if not paths.best.exists():
        raise TagfError(f"{paths.best}: no best weights; train the run first (`tagf train`)")
    setup = _setup(cfg, spec, paths, bool(_previous_record(paths).get("debug", False)))
    _load_weights(setup, load_torch(paths.best, "best weights")["model"])
    return write_predictions(setup, partition)


def load_run_model(cfg: TagfConfig, spec: RunSpec) -> TAGFModel:
    """A trained run's model in eval mode on the CPU: backbones from ``train.weights_dir``, the rest from best.pt."""
    paths = RunPaths.of(cfg.train.output_root, spec)
    if not paths.best.exists():
        raise TagfError(f"{paths.best}: no best weights; train the run first (`tagf train`)")
    if spec.probe:
        raise TagfError(f"{paths.folder}: a {spec.model} probe reads cached embeddings, not images; use --partition")
    model = build_model(cfg, spec)
    model.load_state_dict(load_torch(paths.best, "best weights")["model"], strict=cfg.train.backbone != "frozen")
    return model.eval()
