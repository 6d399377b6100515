"""Everything a run needs before its first epoch, built once: the data (manifest and fold split, read once per
run), the device, the seeded model, the Datasets and loaders, and the batch forward.

``setup_run`` is the only place a run reads ``manifest.json``; the launch that starts many runs reads it once and
hands the records down (``RunData``), so a cross-validation parses it once in all.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from tagf_core.config import TagfConfig
from tagf_core.data.dataset import EmbeddingWindowDataset, RunDataset, WindowDataset
from tagf_core.data.folds import FoldSplit, split_fold
from tagf_core.data.layout import MANIFEST_NAME, TrialRecord, read_manifest
from tagf_core.errors import TagfError
from tagf_core.model import TAGFModel, build_tagf_from_config
from tagf_core.model.probe import RidgeProbe
from tagf_core.model.reference_weights import load_backbone_weights
from tagf_core.model.tagf import Fusion
from tagf_core.training.batchnorm import batchnorm_layers
from tagf_core.training.embed import backbone_digest, build_embedding_cache
from tagf_core.training.run import PROBE_MODALITIES, RunPaths, RunSpec
from tagf_core.training.schedule import zero_lr_epochs

log = logging.getLogger(__name__)

VISUAL_WEIGHTS, AUDIO_WEIGHTS = "res50_ir_0.887.pth", "vggish.pth"
CUDA_LOADER_WORKERS = 4  # data.num_workers = auto on CUDA: a GPU step is short enough for the loader to matter


@dataclass(frozen=True)
class RunData:
    """A preprocessed dataset's manifest, read once, and its fold splits, each computed once: shared by every
    run of a launch (and sent along to Ray tasks)."""

    root: Path
    records: dict[str, TrialRecord]
    """trial → record, in the manifest's order."""
    splits: dict[tuple[int, bool], FoldSplit] = field(default_factory=dict, compare=False)
    """(fold, debug) → split, filled by ``split``."""

    @classmethod
    def read(cls, root: Path) -> RunData:
        return cls(Path(root), {r.trial: r for r in read_manifest(root)})

    def split(self, fold: int, *, debug: bool = False) -> FoldSplit:
        if (fold, debug) not in self.splits:
            self.splits[fold, debug] = split_fold(list(self.records.values()), fold, debug=debug)
        return self.splits[fold, debug]

    def records_of(self, trials: Sequence[str]) -> list[TrialRecord]:
        unknown = [t for t in trials if t not in self.records]
        if unknown:
            raise TagfError(f"{self.root / MANIFEST_NAME}: trial {unknown[0]!r} is not in the manifest")
        return [self.records[t] for t in trials]


@dataclass
class RunSetup:
    """What ``setup_run`` built for one run; the loop reads it and changes only the model's weights."""

    cfg: TagfConfig
    spec: RunSpec
    paths: RunPaths
    data: RunData
    split: FoldSplit
    model: TAGFModel | RidgeProbe
    """TAGF or the concat baseline (a TAGFModel), or a ridge probe."""
    device: torch.device
    train_set: RunDataset
    validate_set: RunDataset
    extra_set: RunDataset
    train_order: list[int]
    """The reference's once-shuffled order of the training windows (ref §2.5), the same every epoch."""
    frozen: bool
    forward: Callable[..., Tensor]
    """The model's forward for a batch (``forward_from_embeddings`` in frozen mode), compiled if train.compile."""
    batchnorm: list[nn.modules.batchnorm._BatchNorm]
    """The BatchNorm layers the forward runs (not the backbones' in frozen mode): what precise statistics recompute."""
    backbone_digest: str | None = None
    """Frozen mode: the digest of the backbones that made the embeddings (``embed.backbone_digest``)."""

    def forward_batch(self, batch: dict[str, Any]) -> Tensor:
        return forward_batch(
            self.forward, batch, self.device, frozen=self.frozen, bf16=self.cfg.train.precision == "bf16"
        )

    def loader(self, dataset: Dataset[Any], order: list[int] | None = None) -> DataLoader[Any]:
        return window_loader(dataset, self.cfg, self.device, order)

    def dataset(self, partition: str) -> RunDataset:
        return {"train": self.train_set, "validate": self.validate_set, "extra": self.extra_set}[partition]


class EmbeddingCallbacks(Protocol):
    """What the CLI shows while the frozen backbones embed the cache (the engine itself draws nothing)."""

    def on_embedding_start(self, trials: int) -> None: ...
    def on_embedded(self, trial: str) -> None: ...


def setup_run(
    cfg: TagfConfig,
    spec: RunSpec,
    paths: RunPaths,
    data: RunData,
    *,
    debug: bool,
    callbacks: EmbeddingCallbacks | None = None,
) -> RunSetup:
    """Seed, build the model on its device, embed the cache (frozen mode) and the three Datasets of the fold.

    Raises:
        TagfError: bad data or weights (naming the file), before the run folder is touched.
    """
    split = data.split(spec.fold, debug=debug)
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    model = build_model(cfg, spec).to(device)  # on the device before the frozen backbones embed the cache
    frozen = cfg.train.backbone == "frozen"
    emotion, window_len, hop_len, crop_size = spec.emotion, cfg.data.window_len, cfg.data.hop_len, cfg.data.crop_size
    if frozen:
        records = data.records_of((*split.train, *split.validate, *split.extra))
        cache = embedding_cache(cfg, model, records, device, callbacks)

        def dataset(trials: Sequence[str], train: bool) -> RunDataset:
            return EmbeddingWindowDataset(
                cache, data.root, data.records_of(trials), emotion=emotion, window_len=window_len, hop_len=hop_len,
                crop_size=crop_size,
            )  # fmt: skip
    else:

        def dataset(trials: Sequence[str], train: bool) -> RunDataset:
            seed = cfg.train.seed if train else None  # crops from (seed, epoch, window): exact on resume
            return WindowDataset(
                data.root, data.records_of(trials), emotion=emotion, train=train, window_len=window_len,
                hop_len=hop_len, crop_size=crop_size, seed=seed,
            )  # fmt: skip

    train_set = dataset(split.train, True)
    # ref §2.5: the training windows are shuffled once, after seeding; every epoch sees this order
    train_order = list(range(len(train_set)))
    random.Random(cfg.train.seed).shuffle(train_order)
    run_model: TAGFModel | RidgeProbe = model
    forward: Callable[..., Tensor] = model.forward_from_embeddings if frozen else model
    if spec.probe:  # the backbones have embedded the cache; the run fits a probe on it
        run_model = RidgeProbe(PROBE_MODALITIES[spec.model]).to(device)
        forward = run_model
    elif cfg.train.compile:
        forward = torch.compile(forward)
    return RunSetup(
        cfg=cfg,
        spec=spec,
        paths=paths,
        data=data,
        split=split,
        model=run_model,
        device=device,
        train_set=train_set,
        validate_set=dataset(split.validate, False),
        extra_set=dataset(split.extra, False),
        train_order=train_order,
        frozen=frozen,
        forward=forward,
        batchnorm=batchnorm_layers(run_model, skip=(model.visual_backbone, model.audio_backbone) if frozen else ()),
        backbone_digest=backbone_digest(model) if frozen else None,
    )


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


def embedding_cache(
    cfg: TagfConfig,
    model: TAGFModel,
    records: Sequence[TrialRecord],
    device: torch.device,
    callbacks: EmbeddingCallbacks | None = None,
) -> Path:
    """The frozen backbones' embedding cache of ``records`` (built now if missing; see ``training/embed.py``).

    ``callbacks`` hear of its start and of each trial embedded; without them each trial is an info line.
    """
    return build_embedding_cache(
        cfg.data.processed_root, model, records, crop_size=cfg.data.crop_size,
        batch_size=cfg.train.embedding_batch_size, device=device, cache_root=cfg.data.embeddings_root,
        on_trial=callbacks.on_embedded if callbacks is not None else (
            lambda trial: log.info("embedded %s (frozen backbones, cached for later runs)", trial)
        ),
        on_start=callbacks.on_embedding_start if callbacks is not None else None,
    )  # fmt: skip


def prepare_embedding_caches(
    cfg: TagfConfig, data: RunData, folds: Sequence[int], *, debug: bool = False
) -> list[Path]:
    """Build the frozen-backbone embedding cache the runs of ``folds`` will read, once, before they start.

    The runs would build it themselves; started together on many machines, each would embed the whole dataset.
    """
    splits = [data.split(fold, debug=debug) for fold in folds]
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)  # as a run does: randomly initialised backbones then get the runs' weights
    model = build_model(cfg).to(device)
    caches: list[Path] = []
    for split in splits:
        needed = data.records_of((*split.train, *split.validate, *split.extra))
        caches.append(embedding_cache(cfg, model, needed, device))  # the same trials reuse the first fold's cache
    return caches


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


def warn_zero_lr_epochs(cfg: TagfConfig, num_batches: int) -> None:
    """One warning when the reference's warm-up keeps the lr at 0 for whole epochs (one train batch per epoch).

    The schedule stays as it is: it reproduces the reference (ref §3.3); the user learns why nothing moves.
    """
    relative = zero_lr_epochs(warmup_epochs=cfg.train.min_epochs, num_batches=num_batches)
    epochs = [epoch for epoch in relative if epoch < cfg.train.max_epochs]
    if not epochs:
        return
    named = f"epoch {epochs[0]}" if len(epochs) == 1 else f"epochs {epochs[0]}–{epochs[-1]}"
    again = f" and the first {len(relative)} after each backbone release" if cfg.train.backbone == "release" else ""
    log.warning(
        "the learning rate stays 0 through %s%s: the training set is one batch (train.batch_size %d) and the "
        "warm-up's lr is 0 on an epoch's first batch (ref §3.3, train.min_epochs %d); a smaller train.batch_size "
        "or data.hop_len gives the warm-up more batches",
        named, again, cfg.train.batch_size, cfg.train.min_epochs,
    )  # fmt: skip
