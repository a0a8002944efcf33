"""Seeded case-level splits, and their JSON file (`splits.json`).

Cases are patients (CHAOS), cases (PROMISE12, BraTS) or images (DSB2018):
every slice of a volume lands in the same split as its case. `test` is the
SPEC held-out share; `train` and `val` partition the rest, `val` being
`val_fraction` of it (the architecture step of the search and checkpoint
selection of retraining use it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from data.errors import data_error

SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1


def make_splits(
    cases: list[str], test_fraction: float, val_fraction: float = 0.25, seed: int = 0, dataset: str = ""
) -> dict:
    """Shuffle `cases` with `seed` and cut them into train / val / test lists.

    Counts round to the nearest case, with at least one case in every share
    whose fraction is positive as long as train keeps one too. The result
    depends only on the set of case ids, not on their order.
    """
    for label, fraction in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"{label} must be in [0, 1), got {fraction}")
    ordered = sorted(set(cases))
    if len(ordered) != len(cases):
        raise ValueError("case ids must be unique")
    order = np.random.default_rng(seed).permutation(len(ordered))
    shuffled = [ordered[i] for i in order]
    test_count = _share(len(shuffled), test_fraction)
    pool = shuffled[test_count:]
    val_count = _share(len(pool), val_fraction)
    return {
        "dataset": dataset,
        "seed": int(seed),
        "test_fraction": float(test_fraction),
        "val_fraction": float(val_fraction),
        "train": sorted(pool[val_count:]),
        "val": sorted(pool[:val_count]),
        "test": sorted(shuffled[:test_count]),
        "version": FORMAT_VERSION,
    }


def splits_text(splits: dict, path: str | os.PathLike = "<splits>") -> str:
    """The JSON text of validated splits (what `save_splits` writes)."""
    _validate(path, splits)
    return json.dumps(splits, indent=2) + "\n"


def without_cases(splits: dict, cases: set[str]) -> dict:
    """The splits with `cases` left out of every list (cases skipped as unreadable)."""
    return {**splits, **{name: [c for c in splits[name] if c not in cases] for name in SPLITS}}


def save_splits(path: str | os.PathLike, splits: dict) -> Path:
    """Write splits as JSON (usually `<run dir>/splits.json`)."""
    text = splits_text(splits, path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load_splits(path: str | os.PathLike) -> dict:
    """Read and validate a splits file written by `save_splits`."""
    path = Path(path)
    try:
        splits = json.loads(path.read_text())
    except FileNotFoundError:
        raise data_error(path, "splits file not found") from None
    except json.JSONDecodeError as exc:
        raise data_error(path, f"not valid JSON ({exc.msg} at line {exc.lineno}); expected a splits.json") from None
    _validate(path, splits)
    return splits


def _share(count: int, fraction: float) -> int:
    if fraction <= 0 or count < 2:
        return 0
    return int(min(max(1, np.floor(count * fraction + 0.5)), count - 1))


def _validate(path: str | os.PathLike, splits: dict) -> None:
    if not isinstance(splits, dict) or any(not isinstance(splits.get(name), list) for name in SPLITS):
        raise data_error(path, f"expected a JSON object with case lists {', '.join(SPLITS)}")
    seen: dict[str, str] = {}
    for name in SPLITS:
        for case in splits[name]:
            if case in seen:
                raise data_error(path, f"case {case} is in both {seen[case]} and {name}; "
                                 "expected disjoint splits")
            seen[case] = name
