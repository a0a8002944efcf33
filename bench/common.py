"""Helpers the benchmark scripts share: device description, timing, a variant in its own
process, BENCHMARKS.md sections."""
from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from nas.complexity.device import cpu_model, device_description  # noqa: F401  (re-exported)

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


class TimeLimitExceeded(RuntimeError):
    """A benchmark variant ran past its time limit (``--variant-timeout``)."""


class Deadline:
    """A time limit checked between steps: ``check()`` raises :class:`TimeLimitExceeded` once
    ``seconds`` have passed since the deadline was made (never, for ``None``)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    def check(self, what: str = "") -> None:
        if self.seconds is not None and time.perf_counter() - self.start > self.seconds:
            raise TimeLimitExceeded(f"over the {self.seconds:g} s limit"
                                    + (f" ({what})" if what else ""))


def median_seconds(run: Callable[[], None], device: torch.device, warmup: int,
                   repeats: int, deadline: Deadline | None = None) -> float:
    """Median wall time of ``run`` after ``warmup`` calls, synchronising CUDA around each;
    ``deadline`` is checked after every call."""
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
        if deadline is not None:
            deadline.check(f"after {step + 1} of {warmup + repeats} steps")
    return statistics.median(times)


def run_variant_process(module: str, name: str, passthrough: Sequence[str],
                        timeout: float | None) -> dict[str, Any]:
    """One variant of a bench script in its own process (``python -m MODULE PASSTHROUGH --one
    NAME`` in the checkout), within ``timeout`` seconds: the row its last line of output holds
    (JSON), or a row of the variant with a note saying it was stopped or failed (the last line
    of its stderr)."""
    try:
        result = subprocess.run([sys.executable, "-m", module, *passthrough, "--one", name],
                                capture_output=True, text=True, timeout=timeout,
                                cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired:
        return {"variant": name, "note": f"over the {timeout:g} s limit: stopped"}
    if result.returncode != 0:
        lines = (result.stderr.strip() or f"exit {result.returncode}").splitlines()
        return {"variant": name, "note": "error: " + lines[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def format_cell(value: Any) -> str:
    """A markdown table cell: floats to 3 decimals, missing values empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{round(value, 3):g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value).replace("|", "/")


class MarkdownRows:
    """A markdown table written one row at a time: each row is printed and appended to the
    file (unless ``no_write``) as soon as it exists, so a run cut short (a time limit, a crash,
    a machine taken back) keeps every row it finished. ``close(footer)`` ends the section."""

    def __init__(self, heading: str, columns: Sequence[str], no_write: bool,
                 output: str | Path | None = None) -> None:
        self.columns = list(columns)
        self.path = None if no_write else Path(output or BENCHMARKS)
        self.rows: list[dict[str, Any]] = []
        header = "| " + " | ".join(self.columns) + " |"
        rule = "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(self.columns))) + "|"
        self._write("\n" + heading.rstrip() + "\n\n" + header + "\n" + rule + "\n",
                    section_start=True)

    def _write(self, text: str, section_start: bool = False) -> None:
        print(text, end="", flush=True)
        if self.path is None:
            return
        prefix = "# Benchmarks\n\n" if section_start and not self.path.exists() else ""
        with self.path.open("a") as handle:
            handle.write(prefix + (text.lstrip("\n") if section_start else text))
            handle.flush()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._write("| " + " | ".join(format_cell(row.get(c)) for c in self.columns) + " |\n")

    def close(self, footer: str = "") -> None:
        self._write(("\n" + footer.rstrip() + "\n" if footer.strip() else "") + "\n")
        if self.path is not None:
            print(f"appended to {self.path}")


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
