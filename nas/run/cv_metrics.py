"""The cross-validated scores of a folds run, written at its top once every fold is done
(``nas.metrics.cross_validation`` computes them):

- ``cv_metrics.csv``: one row per fold (its headline test DSC and MIoU, the mean over its test
  cases of every per-case score, params and FLOPs), then the ``mean`` and ``sd`` rows;
- ``cv_cases.csv``: the pooled per-case table, every case once with its ``fold`` and ``dsc``:
  what ``lwnas report`` pairs between networks;
- ``cv_metrics.json``: the same per fold and as mean and sd, with the scoring rule, the network,
  the fold directories and the names of both tables.

Read from each fold's ``metrics.json`` and ``test_cases.csv`` alone, so a folds run trained fold
by fold (``--fold i``) gets them when its last fold ends.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from nas.metrics.cross_validation import (
    CV_CASES,
    CV_METRICS,
    CV_TABLE,
    SPREAD_ROWS,
    cross_validation_table,
    fold_row,
    pooled_cases,
)
from nas.train import atomic_write_text

from .fold_layout import fold_dir, run_folds

#: What names the network trained and how it was scored, copied from the first fold's metrics.json.
IDENTITY = ("dataset", "genotype", "model", "scoring", "metric_definitions")


def _jsonable(value: Any) -> Any:
    """NaN as null: the file stays strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


#: Per-fold entries that are whole numbers (the table's NaN rows make them floats).
_COUNTS = ("fold", "cases", "best_epoch", "params", "flops")


def _count(key: str, value: Any) -> Any:
    return int(value) if key in _COUNTS and isinstance(value, float) and value.is_integer() else value


def cross_validation_tables(run: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(per-fold table with its mean and sd rows, pooled per-case table, the first fold's
    metrics.json) of a folds run whose every fold is done; a fold not done is one line naming it."""
    run = Path(run)
    count = run_folds(run)
    if not count:
        raise ValueError(f"{run}: not a folds run (no splits.json with folds)")
    rows, cases, first = [], [], None
    for fold in range(count):
        folder = fold_dir(run, fold)
        metrics_file, cases_file = folder / "metrics.json", folder / "test_cases.csv"
        missing = [path.name for path in (metrics_file, cases_file) if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: fold {fold} is not done (no {', '.join(missing)}); train it "
                                    f"(retrain.py ... --fold {fold} --out {run}) or resume the run")
        metrics = json.loads(metrics_file.read_text())
        table = pd.read_csv(cases_file)
        first = first or metrics
        rows.append(fold_row(fold, metrics, table))
        cases.append((fold, table))
    return cross_validation_table(rows), pooled_cases(cases), first or {}


def write_cv_metrics(run: str | Path) -> dict[str, Any]:
    """Write ``cv_metrics.json``, ``cv_metrics.csv`` and ``cv_cases.csv`` at the top of a folds
    run whose every fold is done (rank 0 only); returns the JSON's content."""
    run = Path(run)
    table, cases, first = cross_validation_tables(run)
    per_fold = table[~table["fold"].isin(SPREAD_ROWS)]
    spread = {name: table[table["fold"] == name].drop(columns="fold").iloc[0].dropna().to_dict()
              for name in SPREAD_ROWS}
    summary = _jsonable({
        **{key: first[key] for key in IDENTITY if key in first},
        "folds": int(len(per_fold)),
        "fold_dirs": [fold_dir(run, fold).name for fold in range(len(per_fold))],
        "per_fold": [{key: _count(key, value) for key, value in row.items()} for row in per_fold.to_dict("records")],
        **spread,
        "cases": int(len(cases)),
        "case_dsc": "a case's DSC is the mean of its per-class (BraTS: per-region) Dice, the classes it "
                    "leaves out (empty in both prediction and truth) left out",
        "tables": [CV_TABLE, CV_CASES],
    })
    atomic_write_text(run / CV_TABLE, table.to_csv(index=False))
    atomic_write_text(run / CV_CASES, cases.to_csv(index=False))
    atomic_write_text(run / CV_METRICS, json.dumps(summary, indent=2) + "\n")
    return summary


def cv_line(summary: dict[str, Any]) -> str:
    """One line: ``3-fold test DSC 0.8120 +- 0.0310 (MIoU 0.7010 +- 0.0400), 10 cases``."""
    mean, sd = summary["mean"], summary["sd"]

    def pair(key: str) -> str:
        value, spread = mean.get(key), sd.get(key)
        return f"{value:.4f} +- {spread:.4f}" if spread is not None else f"{value:.4f}"

    iou = f" (MIoU {pair('miou')})" if mean.get("miou") is not None else ""
    return f"{summary['folds']}-fold test DSC {pair('dsc')}{iou}, {summary['cases']} cases"


__all__ = ["IDENTITY", "cross_validation_tables", "cv_line", "write_cv_metrics"]
