"""Small synthetic data sets written in exactly the real on-disk formats.

`sample_root(name)` writes one on first use into the cache
(`<cache root>/sample/<name>`) and returns its path; `get_dataset(name)` with
no data root reads it, so every command works without downloads. The data
are deterministic (seeded), a few MB, and learnable: the labelled structures
differ in intensity from their surroundings, so a small network beats chance
Dice within a few CPU epochs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from data.cache import cache_root
from data.presets import get_preset
from data.sample.brats import write_brats
from data.sample.chaos import write_chaos
from data.sample.dsb2018 import write_dsb2018
from data.sample.promise12 import write_promise12

# Bump when a writer changes, so cached copies are rewritten.
SAMPLE_VERSION = "1"
_COMPLETE = ".lwnas-sample-complete"

WRITERS: dict[str, Callable[..., Path]] = {
    "dsb2018": write_dsb2018,
    "chaos": write_chaos,
    "promise12": write_promise12,
    "brats": write_brats,
}


def write_sample(name: str, out: str | os.PathLike, seed: int = 0, **options) -> Path:
    """Write the sample data set `name` into `out` (options go to its writer, e.g. year="2020")."""
    get_preset(name)  # unknown names fail with suggestions
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return WRITERS[name](out, seed=seed, **options)


def sample_root(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The sample data set's folder in the cache, written first if missing or outdated."""
    get_preset(name)
    folder = cache_root(cache_dir) / "sample" / name
    marker = folder / _COMPLETE
    if marker.is_file() and marker.read_text() == SAMPLE_VERSION:
        return folder
    # Write beside and rename, so concurrent processes (DDP ranks) never read
    # a half-written folder.
    partial = folder.with_name(f"{name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    write_sample(name, partial)
    (partial / _COMPLETE).write_text(SAMPLE_VERSION)
    if folder.exists() and not (marker.is_file() and marker.read_text() == SAMPLE_VERSION):
        shutil.rmtree(folder, ignore_errors=True)
    try:
        partial.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(partial, ignore_errors=True)
    return folder


__all__ = ["SAMPLE_VERSION", "WRITERS", "sample_root", "write_sample"]
