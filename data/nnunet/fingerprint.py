"""The data set fingerprint (what nnU-Net extracts before planning) and the 2D size planned from it.

`fingerprint_of` reads the given cases with a data set's reader (raw intensities, before any
normalisation; `data.extract_fingerprint` picks the cases of a data set by name) and gathers, as
a JSON-serialisable dict:

- `foreground_intensity_properties_per_channel`: {"0": {mean, std, median, min, max,
  percentile_00_5, percentile_99_5, samples}, ...} over foreground voxels (label > 0),
  at most `samples_per_case` of them per case, evenly spaced in array order so that
  the result is deterministic (nnU-Net draws 10k at random);
- `spacings`, `shapes` per case (array axis order) and `spacing`, `shape`: {median, min, max}
  per axis;
- `class_frequencies`: {label value: share of all voxels};
- `num_cases`, `cases`, `channels`, `skipped` ([case, message] of unreadable cases with skip_bad).

`plan_2d_size` turns it into the side of the served 2D images.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from data.cache import digest, file_signature
from data.errors import DataError
from data.interfaces import Source
from data.nnunet.reader import slice_axis

FINGERPRINT_VERSION = 1
# Foreground voxels sampled per case for the intensity statistics (nnU-Net: 10,000).
FOREGROUND_SAMPLES = 10_000
PERCENTILES = (0.5, 99.5)
# Below this a 2D network with four poolings has nothing left to pool.
MIN_2D_SIZE = 16


def fingerprint_of(source: Source, case_paths: dict[str, Path], options: dict,
                   samples_per_case: int = FOREGROUND_SAMPLES, skip_bad: bool = False) -> dict:
    """The fingerprint of these cases (case id -> path) read with `source`."""
    channels = tuple(source.channels(options))
    samples: list[list[np.ndarray]] = [[] for _ in channels]
    counts = np.zeros(256, dtype=np.int64)
    spacings, shapes, used, skipped = [], [], [], []
    for case, path in case_paths.items():
        try:
            image, label, meta = source.read(path, options)
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append([case, str(exc)])
            continue
        foreground = label > 0
        for channel, values in enumerate(image):
            samples[channel].append(evenly_spaced(values[foreground], samples_per_case))
        counts += np.bincount(label.ravel(), minlength=256)[:256]
        spacings.append([float(s) for s in meta["spacing"]])
        shapes.append([int(n) for n in label.shape])
        used.append(case)
    total = int(counts.sum())
    return {
        "version": FINGERPRINT_VERSION,
        "num_cases": len(used),
        "cases": used,
        "channels": list(channels),
        "foreground_intensity_properties_per_channel": {
            str(channel): intensity_properties(np.concatenate(parts) if parts else np.zeros(0))
            for channel, parts in enumerate(samples)},
        "spacings": spacings,
        "shapes": shapes,
        "spacing": _distribution(spacings),
        "shape": _distribution(shapes),
        "class_frequencies": {str(v): int(counts[v]) / total for v in np.flatnonzero(counts)} if total else {},
        "samples_per_case": int(samples_per_case),
        "skipped": skipped,
    }


def evenly_spaced(values: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` of `values`, evenly spaced (integer arithmetic: the same picks on every CPU)."""
    values = np.asarray(values).ravel()
    if len(values) <= limit:
        return values
    if limit <= 1:
        return values[:limit]
    return values[np.arange(limit, dtype=np.int64) * (len(values) - 1) // (limit - 1)]


def intensity_properties(values: np.ndarray) -> dict:
    """mean, std, median, min, max, 0.5 and 99.5 percentiles (None without voxels) and the count."""
    names = ("mean", "std", "median", "min", "max", "percentile_00_5", "percentile_99_5")
    if values.size == 0:
        return {**dict.fromkeys(names), "samples": 0}
    values = values.astype(np.float64)
    low, high = np.percentile(values, PERCENTILES)
    numbers = (values.mean(), values.std(), np.median(values), values.min(), values.max(), low, high)
    return {**{name: float(v) for name, v in zip(names, numbers)}, "samples": int(values.size)}


def _distribution(rows: list[list[float]]) -> dict | None:
    if not rows or len({len(row) for row in rows}) != 1:
        return None  # no cases, or 2D and 3D mixed: no per-axis statistics
    array = np.asarray(rows, dtype=np.float64)
    return {name: [float(v) for v in f(array, axis=0)] for name, f in
            (("median", np.median), ("min", np.min), ("max", np.max))}


def plan_2d_size(fingerprint: dict, cap: int = 256, minimum: int = MIN_2D_SIZE) -> int:
    """The side of the served 2D images: the larger median in-plane size (volumes are cut along
    their coarsest axis), rounded to the nearest power of two in log scale, between
    `minimum` and the largest power of two not above `cap`."""
    in_plane = []
    for shape, spacing in zip(fingerprint["shapes"], fingerprint["spacings"]):
        if len(shape) == 3:
            axis = slice_axis(spacing)
            shape = [n for a, n in enumerate(shape) if a != axis]
        in_plane.append(shape)
    if not in_plane:
        raise ValueError("the fingerprint holds no case; expected at least one to plan a size from")
    side = float(np.max(np.median(np.asarray(in_plane, dtype=np.float64), axis=0)))
    size = 2 ** round(math.log2(max(side, 1.0)))
    return int(min(max(size, minimum), 2 ** math.floor(math.log2(cap))))


def cached_fingerprint(source: Source, case_paths: dict[str, Path], options: dict, folder: Path,
                       skip_bad: bool = False, samples_per_case: int = FOREGROUND_SAMPLES) -> dict:
    """`fingerprint_of`, stored in `folder` under a hash of the cases' files, so the train, val
    and test datasets of one split read the training cases once."""
    files = [file for path in case_paths.values() for file in source.files(path, options)]
    key = digest({"version": FINGERPRINT_VERSION, "cases": sorted(case_paths), "skip_bad": skip_bad,
                  "samples": samples_per_case, "sources": file_signature(files)})
    path = Path(folder) / f"fingerprint-{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    fingerprint = fingerprint_of(source, case_paths, options, samples_per_case, skip_bad)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps(fingerprint, indent=1) + "\n")
    os.replace(partial, path)  # atomic: concurrent ranks never read half a file
    return fingerprint
