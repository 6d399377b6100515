"""Does `tagf train` learn what the data holds? `python -m benchmarks.learning [--frames N] [--config F] [--larger]`

Side by side, in one run, on a small dataset that `tagf synth` did not write (``tests/learning/
independent_release.py``: 7 training and 2 validation trials; the face carries valence, the voice arousal):

* the ridge probe on the cached frozen-backbone embeddings (`--model ridge`, and per modality),
* frozen-mode TAGF with the reference's BatchNorm statistics (``train.batchnorm_statistics = "running"``),
* frozen-mode TAGF with precise statistics (the default),
* both TAGF variants again with the validation trials replaced by copies of two training trials.

With ``--larger``, also both BatchNorm modes of TAGF on a larger `tagf synth` set whose epochs have enough
batches for the reference's running averages to converge (``--larger-trials``, ``--larger-seconds``; at most
``--larger-max-epochs`` epochs there).

Every run goes through the `tagf` command as a user would run it (fold 0, both emotions, ``--config``, by
default ``configs/learning.toml``, the schedule the tests use). Prints one table of best validation CCC and
writes it to ``OUT/learning.md``. A benchmark, not a test: nothing is asserted here (``tests/learning/`` does).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
TAGF = [sys.executable, "-m", "tagf_cli"]
EMOTIONS = ("valence", "arousal")


def independent_release() -> ModuleType:
    path = REPO / "tests" / "learning" / "independent_release.py"
    spec = importlib.util.spec_from_file_location("tagf_independent_release", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def tagf(*args: str, env: dict[str, str]) -> None:
    subprocess.run([*TAGF, *args], check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)


def best_ccc(output_root: Path, stamp: str, emotion: str, model: str) -> tuple[float, int]:
    name = f"fold0-{emotion}" + ("" if model == "tagf" else f"-{model}")
    summary = json.loads((output_root / stamp / name / "summary.json").read_text())
    return float(summary["best_val_ccc"]), int(summary["best_epoch"])


def batches_per_epoch(run_folder: Path) -> int:
    """Training batches per epoch of a TAGF run: its precise statistics count one update per batch."""
    from tagf_core.training.checkpoint import load_torch

    checkpoint = run_folder / "checkpoint.pt"
    if not checkpoint.exists():
        return 0
    tracked = load_torch(checkpoint, "checkpoint")["model"].get("head.norm.num_batches_tracked")
    config = (run_folder / "config.toml").read_text()
    return int(tracked) if tracked is not None and 'batchnorm_statistics = "precise"' in config else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250, help="frames per trial of the independent set")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "learning.toml")
    parser.add_argument("--larger", action="store_true", help="also compare the BatchNorm modes on a larger set")
    parser.add_argument("--larger-trials", type=int, default=12)
    parser.add_argument("--larger-seconds", type=float, default=16.0)
    parser.add_argument("--larger-max-epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None, help="working folder [default: a temporary one]")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="tagf-learning-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "TAGF_TRACKING__TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "TAGF_TRACKING__ARTIFACT_ROOT": str(work / "mlruns"),
        "TAGF_TRAIN__OUTPUT_ROOT": str(work / "outputs"),
    }
    generator = independent_release()
    release = generator.write_release(work / "raw", frames=args.frames, seed=0)
    copies = generator.copy_training_trials_as_validation(release, work / "raw-copies")
    rows: list[tuple[str, str, str, dict[str, tuple[float, int]]]] = []
    started = time.monotonic()
    sets = [("independent", release.out), ("validation = copies of training trials", copies)]
    if args.larger:
        larger = work / "raw-larger"
        tagf("synth", str(larger), "--trials", str(args.larger_trials), "--seconds", str(args.larger_seconds),
             "--seed", "0", env=env)  # fmt: skip
        sets.append((f"tagf synth, {args.larger_trials} trials of {args.larger_seconds:g} s", larger))
    for data, raw in sets:
        processed = work / f"processed-{raw.name}"
        tagf("preprocess", "--data-root", str(raw), "--out", str(processed), "--workers", "2", env=env)
        stamp = raw.name.replace("_", "-")
        epochs = {"TAGF_TRAIN__MAX_EPOCHS": str(args.larger_max_epochs)} if raw.name == "raw-larger" else {}
        runs = [("ridge", "running"), ("tagf", "running"), ("tagf", "precise")]
        if raw == release.out:
            runs = [("ridge-video", "running"), ("ridge-audio", "running"), *runs]
        for model, statistics in runs:
            run_stamp = f"{stamp}-{statistics}"
            tagf(
                "train", "--data", str(processed), "--fold", "0", "--emotion", "both", "--model", model,
                "--stamp", run_stamp, "--config", str(args.config),
                env={**env, "TAGF_TRAIN__BATCHNORM_STATISTICS": statistics, **epochs},
            )  # fmt: skip
            label = model if model.startswith("ridge") else f"{model}, batchnorm_statistics = {statistics}"
            scores = {e: best_ccc(work / "outputs", run_stamp, e, model) for e in EMOTIONS}
            rows.append((data, label, f"{time.monotonic() - started:.0f}s", scores))
            print(f"{data} | {label} | " + " | ".join(f"{e} {c:.3f} (epoch {b})" for e, (c, b) in scores.items()))
            batches = batches_per_epoch(work / "outputs" / run_stamp / "fold0-valence")
            if batches:
                print(f"  {batches} training batches per epoch (capped at train.precise_batchnorm_batches)")
    lines = [
        f"# Best validation CCC, fold 0, `--config {args.config.name}`, {args.frames} frames per trial",
        "",
        "| validation data | model | valence CCC (best epoch) | arousal CCC (best epoch) |",
        "|---|---|---:|---:|",
    ]
    for data, label, _, scores in rows:
        cells = " | ".join(f"{scores[e][0]:.3f} ({scores[e][1]})" for e in EMOTIONS)
        lines.append(f"| {data} | {label} | {cells} |")
    table = "\n".join(lines) + "\n"
    (work / "learning.md").write_text(table)
    print(table)
    print(f"runs, MLflow store and data in {work}")


if __name__ == "__main__":
    main()
