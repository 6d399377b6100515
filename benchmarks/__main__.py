"""`python -m benchmarks [--full] [--only NAME,…] [--device cpu|cuda] [--precision fp32|bf16] [--out FILE]`

Runs the benchmarks on synthetic data it generates itself, prints one table and writes ``benchmarks/results.json``
(see BENCHMARKS.md for what each figure means). A benchmark is not a test: targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from benchmarks.common import FULL, QUICK, BenchResult, Sizes

RESULTS = Path(__file__).parent / "results.json"
Bench = Callable[[Sizes, Path, str, str], BenchResult]


def _benchmarks() -> dict[str, Bench]:
    from benchmarks import inference, preprocess, training

    return {
        "epochs": training.run_epochs,
        "loader": training.run_loader,
        "preprocess": lambda sizes, root, device, precision: preprocess.run(sizes, root, device),
        "inference": lambda sizes, root, device, precision: inference.run(sizes, root, device),
    }


def machine(device: str) -> dict[str, object]:
    import torch

    info: dict[str, object] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def render(results: list[BenchResult]) -> str:
    lines = [f"{'benchmark / figure':<52} {'median':>12} {'spread (min–max)':>24}  target"]
    for result in results:
        lines.append(result.name)
        targets = {t.figure: t for t in result.targets}
        for figure in result.figures:
            target = targets.get(figure.name)
            verdict = ""
            if target is not None:
                verdict = f"{target.op} {target.bound:g}: {'met' if target.met(figure.median) else 'MISSED'}"
            spread = f"{figure.low:.4g}–{figure.high:.4g}" if len(figure.samples) > 1 else "(1 sample)"
            lines.append(f"  {figure.name:<50} {figure.median:>10.4g} {figure.unit:<2}{spread:>23}  {verdict}")
        lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="bigger data and more repeats (tens of minutes)")
    parser.add_argument("--only", default="", help="comma-separated subset of: epochs, loader, preprocess, inference")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="training precision")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file [default: {RESULTS}]")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder [default: a temporary one]")
    args = parser.parse_args(argv)

    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    benchmarks = _benchmarks()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(benchmarks)
    unknown = sorted(set(chosen) - set(benchmarks))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(benchmarks)}")
    sizes = FULL if args.full else QUICK
    started = time.time()
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory(prefix="tagf-bench-") as scratch:
        workdir = args.workdir or Path(scratch)
        for name in chosen:
            print(f"running {name} …", file=sys.stderr, flush=True)
            folder = workdir / name
            folder.mkdir(parents=True, exist_ok=True)
            results.append(benchmarks[name](sizes, folder, device, args.precision))
    table = render(results)
    print(table)
    payload = {
        "command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        "mode": "full" if args.full else "quick",
        "sizes": asdict(sizes),
        "precision": args.precision,
        "machine": machine(device),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": round(time.time() - started, 1),
        "results": [result.to_json() for result in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_name(f".{args.out.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(temporary, args.out)
    print(f"results: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
