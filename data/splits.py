"""Seeded case-level splits, and their JSON file (`splits.json`).

Cases are patients (CHAOS), cases (PROMISE12, BraTS) or images (DSB2018):
every slice of a volume lands in the same split as its case. `test` is the
SPEC held-out share; `train` and `val` partition the rest, `val` being
`val_fraction` of it (the architecture step of the search and checkpoint
selection of retraining use it).

Cross-validation (`with_folds`) cuts the cases outside `val` into K test folds
(seeded, stratified by which classes a case holds where the caller knows it):
fold i tests on its fold, trains on the others and selects checkpoints on
`val`. The search chose its architecture on `val`, so those cases are never
tested; every other case is tested exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from data.errors import data_error

SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1

#: Share of the cases not held out for testing that validate, unless a data set's preset says
#: otherwise (``DatasetPreset.val_fraction``).
VAL_FRACTION = 0.25


def make_splits(
    cases: list[str], test_fraction: float, val_fraction: float = VAL_FRACTION, seed: int = 0, dataset: str = ""
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


def make_folds(cases: Sequence[str], folds: int, seed: int = 0,
               strata: Mapping[str, Hashable] | None = None, keep_out: Iterable[str] = ()) -> list[list[str]]:
    """Partition `cases` (less `keep_out`) into `folds` sorted test folds.

    Seeded; within each stratum (`strata[case]`, e.g. the set of classes the case's label
    holds; one stratum where not given) the shuffled cases are dealt round-robin, continuing
    the rotation from one stratum to the next, so fold sizes differ by at most one and every
    stratum is spread over the folds. The result depends only on the set of case ids.
    """
    if len(set(cases)) != len(cases):
        raise ValueError("case ids must be unique")
    pool = sorted(set(cases) - set(keep_out))
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if folds > len(pool):
        raise ValueError(f"{folds} folds need at least {folds} cases outside val; there are {len(pool)}")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for case in pool:
        groups.setdefault(repr((strata or {}).get(case)), []).append(case)
    result: list[list[str]] = [[] for _ in range(folds)]
    dealt = 0
    for key in sorted(groups):
        members = groups[key]
        for index in rng.permutation(len(members)):
            result[dealt % folds].append(members[index])
            dealt += 1
    return [sorted(fold) for fold in result]


def with_folds(splits: dict, folds: int, seed: int = 0, strata: Mapping[str, Hashable] | None = None) -> dict:
    """`splits` with a `folds` list: fold i tests on the i-th of `make_folds` over the cases of
    `train` and `test`, selects checkpoints on `val` and trains on the rest."""
    pool = splits["train"] + splits["test"]
    test_folds = make_folds(pool, folds, seed, strata)
    return {**splits, "fold_seed": int(seed), "folds": [
        {"train": sorted(c for other, fold in enumerate(test_folds) if other != index for c in fold),
         "val": list(splits["val"]), "test": test_fold}
        for index, test_fold in enumerate(test_folds)]}


def fold_splits(splits: dict, fold: int) -> dict:
    """The plain train / val / test splits of fold `fold` of a splits dict with folds.

    `plan_cases` names every case of the cross-validation: data sets planned from their training
    cases (nnunet: the 2D size, CT statistics) are planned from these in every fold, as nnU-Net
    plans once for all its folds, so the folds' networks take the same inputs and ensemble.
    """
    folds = splits.get("folds")
    if not folds:
        raise ValueError("these splits hold no folds")
    if not isinstance(fold, int) or not 0 <= fold < len(folds):
        raise ValueError(f"fold must be in 0..{len(folds) - 1}, got {fold}")
    plain = {key: value for key, value in splits.items() if key not in ("folds", "fold_seed")}
    every = sorted({case for name in SPLITS for case in splits[name]})
    return {**plain, **{name: list(folds[fold][name]) for name in SPLITS}, "fold": fold,
            "plan_cases": every}


def splits_text(splits: dict, path: str | os.PathLike = "<splits>") -> str:
    """The JSON text of validated splits (what `save_splits` writes)."""
    _validate(path, splits)
    return json.dumps(splits, indent=2) + "\n"


def without_cases(splits: dict, cases: set[str]) -> dict:
    """The splits with `cases` left out of every list, folds included (cases skipped as
    unreadable)."""
    kept = {**splits, **{name: [c for c in splits[name] if c not in cases] for name in SPLITS}}
    if "plan_cases" in splits:
        kept["plan_cases"] = [c for c in splits["plan_cases"] if c not in cases]
    if "folds" in splits:
        kept["folds"] = [{name: [c for c in fold[name] if c not in cases] for name in SPLITS}
                         for fold in splits["folds"]]
    return kept


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
    plan = splits.get("plan_cases")
    if plan is not None and (not isinstance(plan, list) or not set(plan) <= set(seen)):
        raise data_error(path, "expected `plan_cases` to list cases of train, val and test")
    folds = splits.get("folds")
    if folds is None:
        return
    if not isinstance(folds, list) or not folds or any(
            not isinstance(fold, dict) or any(not isinstance(fold.get(name), list) for name in SPLITS)
            for fold in folds):
        raise data_error(path, f"expected `folds` to be a list of objects with case lists {', '.join(SPLITS)}")
    tested: dict[str, int] = {}
    for index, fold in enumerate(folds):
        _validate(f"{path} (fold {index})", {name: fold[name] for name in SPLITS})
        for case in fold["test"]:
            if case in tested:
                raise data_error(path, f"case {case} is in the test folds {tested[case]} and {index}; "
                                 "expected each case tested once")
            tested[case] = index
