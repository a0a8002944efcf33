"""Helpers the benchmark scripts share: device description, timing, BENCHMARKS.md sections."""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from nas.complexity.device import cpu_model, device_description  # noqa: F401  (re-exported)

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def median_seconds(run: Callable[[], None], device: torch.device, warmup: int,
                   repeats: int) -> float:
    """Median wall time of ``run`` after ``warmup`` calls, synchronising CUDA around each."""
    times = []
    for step in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def append_section(section: str, path: str | Path = BENCHMARKS) -> Path:
    """Append a markdown section to BENCHMARKS.md (created with its title if absent)."""
    path = Path(path)
    header = "" if path.exists() else "# Benchmarks\n\n"
    with path.open("a") as handle:
        handle.write(header + section.rstrip() + "\n\n")
    return path
