"""Training benchmarks: an epoch with the backbones in the loop (release) against cached embeddings (frozen), and
the data loader against the training step it feeds.

Both run the engine's own code (``train_run``, ``window_loader``, the datasets) on a synthetic dataset made here.
"""

from __future__ import annotations

import csv
import shutil
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.common import BenchResult, Figure, Sizes, Target, ratios, timed


def prepare_dataset(root: Path, sizes: Sizes) -> Path:
    """A synthetic release of ``sizes.trials`` trials, preprocessed; reused when it is already there."""
    from preprocessing import preprocess_release
    from tagf_synth import generate_dataset

    processed = root / "processed"
    if (processed / "manifest.json").exists():
        return processed
    shutil.rmtree(root / "raw", ignore_errors=True)
    release = generate_dataset(root / "raw", trials=sizes.trials, seconds=sizes.trial_seconds, seed=0)
    report = preprocess_release(release.out, processed)
    if report.failed:
        raise RuntimeError(f"preprocessing the benchmark data failed: {report.failed}")
    return processed


def bench_config(processed: Path, sizes: Sizes, backbone: str, device: str, precision: str, epochs: int) -> Any:
    """The reference configuration with the benchmark's window, exactly ``epochs`` epochs, no early end."""
    from tagf_core.config import load_config

    return load_config(
        overrides={
            "data": {"processed_root": processed, "window_len": sizes.window_len, "hop_len": sizes.hop_len},
            "train": {
                "backbone": backbone, "device": device, "precision": precision, "max_epochs": epochs,
                "min_epochs": epochs, "early_stopping": epochs + 1,
            },
        }
    )  # fmt: skip


def _epoch_seconds(log: Path) -> list[float]:
    with log.open() as f:
        return [float(row["epoch_seconds"]) for row in csv.DictReader(f)]


def _train(cfg: Any, output_root: Path) -> tuple[list[float], int]:
    """Run ``train_run`` on fold 0, valence, with an in-memory tracker; per-epoch seconds and training windows."""
    from tagf_core.tracking.tracker import InMemoryTracker
    from tagf_core.training.loop import train_run
    from tagf_core.training.run import RunPaths, RunSpec

    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"output_root": output_root})})
    result = train_run(cfg, RunSpec("bench", 0, "valence"), lambda _: InMemoryTracker(), overwrite=True)
    return _epoch_seconds(RunPaths(result.folder).log), _training_windows(cfg)


def _training_windows(cfg: Any) -> int:
    from tagf_core.data.dataset import WindowDataset
    from tagf_core.training.setup import RunData

    data = RunData.read(cfg.data.processed_root)
    dataset = WindowDataset(
        data.root, data.records_of(data.split(0).train), emotion="valence", train=False,
        window_len=cfg.data.window_len, hop_len=cfg.data.hop_len, crop_size=cfg.data.crop_size,
    )  # fmt: skip
    return len(dataset)


def _peak_gpu_mb(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    return torch.cuda.max_memory_allocated() / 2**20


def _reset_gpu_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def run_epochs(sizes: Sizes, root: Path, device: str, precision: str = "fp32") -> BenchResult:
    """Seconds per epoch (train + validation) for release and frozen on the same data, and the cache's cost."""
    from tagf_core.data.layout import EMBEDDINGS_DIR
    from tagf_core.training.setup import RunData, prepare_embedding_caches

    processed = prepare_dataset(root.parent / "training-data", sizes)
    result = BenchResult("training epoch: release vs frozen")
    cache_seconds = []
    frozen_cfg = bench_config(processed, sizes, "frozen", device, precision, sizes.repeats)
    for _ in range(sizes.repeats):  # the one-off cost, built from nothing each time
        shutil.rmtree(processed / EMBEDDINGS_DIR, ignore_errors=True)
        cache_seconds.append(timed(lambda: prepare_embedding_caches(frozen_cfg, RunData.read(processed), [0])))

    # one run per mode, `repeats` epochs each: the epochs are the samples
    _reset_gpu_peak(device)
    release, windows = _train(bench_config(processed, sizes, "release", device, precision, sizes.repeats), root / "r")
    release_peak = _peak_gpu_mb(device)
    _reset_gpu_peak(device)
    frozen, _ = _train(frozen_cfg, root / "f")
    frozen_peak = _peak_gpu_mb(device)

    result.figures += [
        Figure.of("release_epoch_s", "s", release, "seconds per epoch, backbones run on every frame of every step"),
        Figure.of("frozen_epoch_s", "s", frozen, "seconds per epoch on cached embeddings"),
        Figure.of("frozen_speedup", "×", ratios(release, frozen), "release epoch time / frozen epoch time"),
        Figure.of("cache_build_s", "s", cache_seconds, "one-off: embedding every frame of the dataset once"),
        Figure.of("release_windows_per_s", "windows/s", [windows / s for s in release], "training windows per second"),
        Figure.of("frozen_windows_per_s", "windows/s", [windows / s for s in frozen], "training windows per second"),
    ]
    cost = statistics.median(cache_seconds) / (statistics.median(release) - statistics.median(frozen))
    result.figures.append(
        Figure.of("cache_break_even_epochs", "epochs", [cost], "epochs after which the cache has paid for itself")
    )
    if release_peak is not None and frozen_peak is not None:
        result.figures += [
            Figure.of("release_peak_gpu_mb", "MiB", [release_peak], "peak GPU memory allocated, release run"),
            Figure.of("frozen_peak_gpu_mb", "MiB", [frozen_peak], "peak GPU memory allocated, frozen run"),
        ]
    result.targets.append(Target("frozen_speedup", ">=", 20.0))
    result.notes.append(
        f"{windows} training windows of {sizes.window_len} frames per epoch (fold 0, valence), batch "
        f"{frozen_cfg.train.batch_size}, precision {precision}, device {device}; epoch time includes validation"
    )
    return result


def _collect_batches(loader: Any) -> list[Any]:
    return list(loader)


def _step_function(cfg: Any, device: str, frozen: bool) -> Callable[[list[Any]], None]:
    """One optimisation step per batch, as the engine's training epoch does it (forward, CCC loss, Adam)."""
    import torch

    from tagf_core.training.loss import ccc_loss
    from tagf_core.training.setup import build_model, forward_batch, resolve_device, seed_everything

    torch_device = resolve_device(device)
    seed_everything(cfg.train.seed)
    model = build_model(cfg).to(torch_device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=cfg.train.learning_rate, weight_decay=cfg.train.weight_decay)
    forward = model.forward_from_embeddings if frozen else model
    bf16 = cfg.train.precision == "bf16"

    def steps(batches: list[Any]) -> None:
        for batch in batches:
            prediction = forward_batch(forward, batch, torch_device, frozen=frozen, bf16=bf16)
            loss = ccc_loss(prediction, batch["label"].to(torch_device), batch["mask"].to(torch_device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if torch_device.type == "cuda":
            torch.cuda.synchronize()

    return steps


def run_loader(sizes: Sizes, root: Path, device: str, precision: str = "fp32") -> BenchResult:
    """The loader alone (a full pass, workers started as in an epoch) against the training steps alone on the
    very batches it produced, for both modes, with the default ``data.num_workers``."""
    import torch

    from tagf_core.data.dataset import EmbeddingWindowDataset, WindowDataset
    from tagf_core.training.setup import RunData, loader_workers, prepare_embedding_caches, window_loader

    processed = prepare_dataset(root.parent / "training-data", sizes)
    result = BenchResult("data loader vs training step")
    for backbone in ("release", "frozen"):
        cfg = bench_config(processed, sizes, backbone, device, precision, 1)
        data = RunData.read(processed)
        train_records = data.records_of(data.split(0).train)
        if backbone == "frozen":
            (cache,) = prepare_embedding_caches(cfg, data, [0])
            dataset: Any = EmbeddingWindowDataset(
                cache, processed, train_records, emotion="valence", window_len=sizes.window_len,
                hop_len=sizes.hop_len, crop_size=cfg.data.crop_size,
            )  # fmt: skip
        else:
            dataset = WindowDataset(
                processed, train_records, emotion="valence", train=True, window_len=sizes.window_len,
                hop_len=sizes.hop_len, crop_size=cfg.data.crop_size, seed=cfg.train.seed,
            )  # fmt: skip
        torch_device = torch.device("cuda" if device.startswith("cuda") else "cpu")
        loader = window_loader(dataset, cfg, torch_device)
        steps = _step_function(cfg, device, backbone == "frozen")
        steps(_collect_batches(loader)[:1])  # warm-up: first-call allocations and kernel selection
        loader_seconds, step_seconds = [], []
        for _ in range(sizes.repeats):
            start = time.perf_counter()
            batches = _collect_batches(loader)
            loader_seconds.append(time.perf_counter() - start)
            step_seconds.append(timed(partial(steps, batches)))
        result.figures += [
            Figure.of(f"{backbone}_loader_s", "s", loader_seconds, f"{backbone}: one pass of the loader alone"),
            Figure.of(f"{backbone}_step_s", "s", step_seconds, f"{backbone}: the training steps alone, same batches"),
            Figure.of(
                f"{backbone}_loader_over_step", "ratio", ratios(loader_seconds, step_seconds),
                f"{backbone}: loader time / step time (target ≤ 0.10)",
            ),
        ]  # fmt: skip
        result.targets.append(Target(f"{backbone}_loader_over_step", "<=", 0.10))
        result.notes.append(
            f"{backbone}: {len(dataset)} windows, batch {cfg.train.batch_size}, "
            f"data.num_workers {cfg.data.num_workers} → {loader_workers(cfg, torch_device)} loader processes"
        )
    return result
