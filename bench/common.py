"""Helpers the benchmark scripts share: device description, timing, BENCHMARKS.md sections."""
from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

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


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """How a bench script was run, for its section (``python -m bench.NAME ARGS``)."""
    given = sys.argv[1:] if argv is None else list(argv)
    return f"python -m {module} " + " ".join(shlex.quote(a) for a in given)


def add_publish_arguments(parser: argparse.ArgumentParser) -> None:
    """``--output FILE`` and ``--no-write``, the flags :func:`publish` takes."""
    parser.add_argument("--output", help="markdown file to append to (default BENCHMARKS.md)")
    parser.add_argument("--no-write", action="store_true", help="print the section only")


def publish(section: str, no_write: bool, output: str | Path | None = None) -> None:
    """Print a bench section and, unless ``no_write``, append it to BENCHMARKS.md (or
    ``output``)."""
    print("\n" + section)
    if not no_write:
        print(f"appended to {append_section(section, output or BENCHMARKS)}")
