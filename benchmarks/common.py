"""What every benchmark shares: repeated timings reduced to a median and its spread, and the result records.

A benchmark compares alternatives side by side in one process, on the same data, and reports their ratio:
absolute seconds on a shared CPU are noise, a ratio measured in one run is not.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does: ``quick`` for `make bench`, ``full`` for `make bench ARGS=--full`."""

    repeats: int
    trials: int
    trial_seconds: float
    long_video_seconds: float
    predict_video_seconds: float
    window_len: int
    hop_len: int


QUICK = Sizes(
    repeats=3, trials=8, trial_seconds=4.0, long_video_seconds=60.0, predict_video_seconds=15.0,
    window_len=32, hop_len=32,
)  # fmt: skip
FULL = Sizes(
    repeats=5, trials=12, trial_seconds=12.0, long_video_seconds=600.0, predict_video_seconds=120.0,
    window_len=64, hop_len=64,
)  # fmt: skip


@dataclass(frozen=True)
class Figure:
    """One measured quantity: the median of its samples, with the spread (min, max) and the samples themselves."""

    name: str
    unit: str
    median: float
    low: float
    high: float
    samples: tuple[float, ...]
    meaning: str

    @classmethod
    def of(cls, name: str, unit: str, samples: list[float], meaning: str) -> Figure:
        if not samples:
            raise ValueError(f"{name}: no samples")
        return cls(name, unit, statistics.median(samples), min(samples), max(samples), tuple(samples), meaning)


@dataclass(frozen=True)
class Target:
    """A figure's goal: ``figure`` compared with ``bound`` by ``op`` (``>=`` or ``<=``)."""

    figure: str
    op: str
    bound: float

    def met(self, value: float) -> bool:
        return value >= self.bound if self.op == ">=" else value <= self.bound


@dataclass
class BenchResult:
    """One benchmark's figures and the targets some of them must meet."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def figure(self, name: str) -> Figure:
        return next(f for f in self.figures if f.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "figures": [asdict(f) for f in self.figures],
            "targets": [
                {**asdict(t), "value": self.figure(t.figure).median, "met": t.met(self.figure(t.figure).median)}
                for t in self.targets
            ],
            "notes": self.notes,
        }


def timed(function: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Pairwise ratios of samples taken side by side (sample i of both in the same round)."""
    return [n / d for n, d in zip(numerators, denominators, strict=True)]


def tagf_executable() -> Path:
    """The `tagf` command of the environment running the benchmarks."""
    return Path(sys.executable).parent / "tagf"
