"""Small synthetic data sets written in exactly the real on-disk formats.

`sample_root(name)` writes one on first use into the cache
(`<cache root>/sample/<name>`) and returns its path; `get_dataset(name)` with
no data root reads it, so every command works without downloads. The data
are deterministic (seeded), a few MB, and learnable: the labelled structures
differ in intensity from their surroundings, so a small network beats chance
Dice within a few CPU epochs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from data.cache import cache_root, partial_name
from data.errors import data_error
from data.presets import get_preset
from data.sample.brats import write_brats
from data.sample.chaos import write_chaos
from data.sample.dsb2018 import write_dsb2018
from data.sample.nnunet import write_nnunet
from data.sample.promise12 import write_promise12

# Bump when a writer changes, so cached copies are rewritten.
SAMPLE_VERSION = 1
# Written last into every sample folder: marks it complete, and tells
# get_dataset to use the sample's small default sizes for it.
MARKER = "lwnas-sample.json"

WRITERS: dict[str, Callable[..., Path]] = {
    "dsb2018": write_dsb2018,
    "chaos": write_chaos,
    "promise12": write_promise12,
    "brats": write_brats,
    "nnunet": write_nnunet,
}


def write_sample(name: str, out: str | os.PathLike, seed: int = 0, **options) -> Path:
    """Write the sample data set `name` into `out` (options go to its writer, e.g. year="2020",
    variant="png")."""
    get_preset(name)  # unknown names fail with suggestions
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and _marked_as(out) != name:
        # sample files written over a real data set would mix with it, and the marker would
        # then make every command treat it as sample data (small sizes)
        raise data_error(out, f"folder is not empty and holds no {name} sample set; expected an empty "
                              "or new folder for the sample data")
    out.mkdir(parents=True, exist_ok=True)
    WRITERS[name](out, seed=seed, **options)
    marker = {"dataset": name, "version": SAMPLE_VERSION, "seed": seed, "options": options}
    (out / MARKER).write_text(json.dumps(marker, default=str) + "\n")
    return out


def _marked_as(root: Path) -> str | None:
    """The data set a folder's sample marker names (any version), or None."""
    try:
        return json.loads((root / MARKER).read_text()).get("dataset")
    except (OSError, ValueError, AttributeError):
        return None


def is_sample(root: str | os.PathLike, name: str) -> bool:
    """Whether `root` holds a complete, current sample data set of `name`."""
    try:
        marker = json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("dataset") == name and marker.get("version") == SAMPLE_VERSION


def sample_root(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The sample data set's folder in the cache, written first if missing or outdated."""
    get_preset(name)
    folder = cache_root(cache_dir) / "sample" / name
    if is_sample(folder, name):
        return folder
    # Write beside and rename, so concurrent processes (DDP ranks, on one host
    # or several sharing the cache) never read a half-written folder.
    partial = folder.with_name(partial_name(name))
    write_sample(name, partial)
    if folder.exists() and not is_sample(folder, name):
        shutil.rmtree(folder, ignore_errors=True)
    try:
        partial.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(partial, ignore_errors=True)
    return folder


__all__ = ["MARKER", "SAMPLE_VERSION", "WRITERS", "is_sample", "sample_root", "write_sample"]
