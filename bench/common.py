"""Helpers the benchmark scripts share: device description, timing, BENCHMARKS.md sections."""
from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: torch.device) -> str:
    """The GPU's name, or the CPU model and the threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU {cpu_model()}, {threads} torch thread{'s' if threads > 1 else ''}"


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
