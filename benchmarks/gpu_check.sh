#!/usr/bin/env bash
# On a CUDA machine: the quick training benchmark on the GPU, release and frozen, in fp32 and in bf16; prints
# training windows per second and peak GPU memory per mode, and the card it ran on. Meant to finish in under
# 5 minutes (each pass is cut off at 140 s). Needs a CUDA build of torch 2.13.0 (the Docker image has one):
#   benchmarks/gpu_check.sh                  # uses .venv/bin/python, or PYTHON=/path/to/python
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
OUT="${OUT:-benchmarks}"

"$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu_check: torch sees no CUDA device (a CPU-only torch build?)")'
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

for precision in fp32 bf16; do
    timeout 140 "$PYTHON" -m benchmarks --only epochs --device cuda --precision "$precision" \
        --out "$OUT/gpu-$precision.json"
done

"$PYTHON" - "$OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
print(f"\n{'precision':<10} {'mode':<8} {'windows/s':>12} {'peak GPU MiB':>14}   card")
for precision in ("fp32", "bf16"):
    payload = json.loads((out / f"gpu-{precision}.json").read_text())
    figures = {f["name"]: f for f in payload["results"][0]["figures"]}
    for mode in ("release", "frozen"):
        rate = figures[f"{mode}_windows_per_s"]["median"]
        peak = figures.get(f"{mode}_peak_gpu_mb", {}).get("median", float("nan"))
        print(f"{precision:<10} {mode:<8} {rate:>12.2f} {peak:>14.0f}   {payload['machine'].get('gpu', '?')}")
PY
