"""The run directory of a K-fold retrain (``retrain.py --folds K``), what every reader of one
(prediction, export, the report, ``lwnas run``) finds where:

    RUN/
      splits.json        the cases: train / val / test as the search had them, and ``folds``:
                         fold i tests on its fold of the train and test cases, trains on the
                         other folds and selects checkpoints on val (``data.with_folds``)
      fold_0/ ... fold_K-1/
                         each a complete retrain run directory: splits.json (the fold's),
                         checkpoint.pt, best.pt, log.csv, metrics.json, test_cases.csv,
                         test_summary.csv
      cv_metrics.json, cv_metrics.csv, cv_cases.csv
                         the cross-validated scores, once every fold is done (``cv_metrics``)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

#: The folder of fold i inside a folds run.
FOLD_FOLDER = "fold_{}"
SPLITS = "splits.json"


def fold_dir(run: str | Path, fold: int) -> Path:
    """The run directory of fold ``fold`` of the folds run ``run``."""
    return Path(run) / FOLD_FOLDER.format(fold)


def run_folds(run: str | Path) -> int | None:
    """The number of folds of the folds run ``run`` (its ``splits.json`` lists them), None for
    any other directory or file."""
    path = Path(run) / SPLITS
    if not Path(run).is_dir() or not path.is_file():
        return None
    try:
        folds = json.loads(path.read_text()).get("folds")
    except (OSError, ValueError, AttributeError):
        return None
    return len(folds) if isinstance(folds, list) and folds else None


def is_folds_run(path: str | Path) -> bool:
    """Whether ``path`` is the directory of a folds run (not a single checkpoint)."""
    return run_folds(path) is not None


def fold_checkpoints(run: str | Path, folds: Sequence[int] | None = None, name: str = "best.pt") -> list[Path]:
    """The ``name`` checkpoint of each of ``folds`` (default: all) of the folds run ``run``; a fold
    out of range or without one is refused in one line naming it."""
    count = run_folds(run)
    if count is None:
        raise ValueError(f"{run}: not a folds run (no splits.json with folds); pass a checkpoint "
                         "file or the directory of a retrain.py --folds run")
    chosen = list(range(count)) if folds is None else [int(fold) for fold in folds]
    if not chosen:
        raise ValueError(f"{run}: no fold chosen; --folds takes fold numbers 0..{count - 1}")
    wrong = [fold for fold in chosen if not 0 <= fold < count]
    if wrong:
        raise ValueError(f"{run}: no fold {wrong[0]}; this run has folds 0..{count - 1}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"--folds {' '.join(map(str, chosen))}: a fold named twice")
    paths = [fold_dir(run, fold) / name for fold in chosen]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: fold {chosen[paths.index(missing[0])]} has no {name} (not "
                                "trained yet?); train it or choose the folds that are done with --folds")
    return paths


__all__ = ["FOLD_FOLDER", "fold_checkpoints", "fold_dir", "is_folds_run", "run_folds"]
