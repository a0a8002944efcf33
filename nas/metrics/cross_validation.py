"""Cross-validated scores: per fold, their mean and spread over the folds, and the pooled
per-case table that pairs two networks case by case (``compare_paired``).

A fold's row holds its headline test DSC, the mean over its test cases of every per-case score
(DSC and IoU per class, or Dice and HD95 per BraTS region; NaN left out) and its cost; the
table ends in a ``mean`` and an ``sd`` row (sample standard deviation over the folds). The
pooled table lists every case once (each is tested in one fold) with its ``fold`` and ``dsc``:
the mean of the case's per-class (per-region) Dice, the classes it leaves out (empty in both
prediction and truth) left out, NaN where it scores none. The file names are this module's
too, so the run that writes them and the report that reads them agree.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["CASE_DSC_PREFIXES", "CV_CASES", "CV_METRICS", "CV_TABLE", "SPREAD_ROWS", "case_dsc",
           "cross_validation_table", "fold_row", "pooled_cases"]

#: What a folds run writes at its top: the summary, the per-fold table, the pooled cases.
CV_METRICS, CV_TABLE, CV_CASES = "cv_metrics.json", "cv_metrics.csv", "cv_cases.csv"
#: Per-case columns whose mean over the classes (``dsc/<class>``) or BraTS regions
#: (``dice/<region>``) is a case's DSC.
CASE_DSC_PREFIXES = ("dsc/", "dice/")
#: The ``fold`` of the rows after the folds' own.
SPREAD_ROWS = ("mean", "sd")
#: Per-fold columns that are counts or bookkeeping, not scores: no mean or sd.
_NOT_AVERAGED = ("fold", "cases", "best_epoch")


def case_dsc(cases: pd.DataFrame) -> pd.Series:
    """Each case's DSC: the mean of its ``dsc/<class>`` (or ``dice/<region>``) scores, the classes
    it leaves out left out; NaN where it scores none."""
    columns = [column for column in cases.columns if str(column).startswith(CASE_DSC_PREFIXES)]
    return cases[columns].astype(float).mean(axis=1, skipna=True)


def _headline(metrics: Mapping[str, Any]) -> float:
    """A fold's test DSC: ``dsc`` (2D runs, 3D runs scored per class), else the mean Dice over the
    regions (BraTS, ``dice.mean``)."""
    if metrics.get("dsc") is not None:
        return float(metrics["dsc"])
    return float((metrics.get("dice") or {}).get("mean", math.nan))


def fold_row(fold: int, metrics: Mapping[str, Any], cases: pd.DataFrame) -> dict[str, Any]:
    """One fold's row from its ``metrics.json`` content and its per-case test table."""
    miou = metrics.get("miou")
    row: dict[str, Any] = {"fold": fold, "cases": int(len(cases)), "dsc": _headline(metrics),
                           "miou": math.nan if miou is None else float(miou)}
    for column in cases.columns:
        if column != "case" and pd.api.types.is_numeric_dtype(cases[column]):
            row[str(column)] = float(cases[column].astype(float).mean(skipna=True))
    row.update({"params": metrics.get("params"), "flops": metrics.get("flops"),
                "best_epoch": metrics.get("best_epoch")})
    return row


def cross_validation_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The folds' rows, then their ``mean`` and ``sd`` (ddof 1) of every score and cost."""
    per_fold = pd.DataFrame(list(rows))
    averaged = [column for column in per_fold.columns if column not in _NOT_AVERAGED]
    values = per_fold[averaged].astype(float)
    spread = pd.DataFrame([{"fold": SPREAD_ROWS[0], **values.mean().to_dict()},
                           {"fold": SPREAD_ROWS[1], **values.std(ddof=1).to_dict()}])
    return pd.concat([per_fold.astype({"fold": object}), spread], ignore_index=True)


def pooled_cases(folds: Sequence[tuple[int, pd.DataFrame]]) -> pd.DataFrame:
    """Every fold's per-case test table in one, with ``fold`` and ``dsc`` (:func:`case_dsc`) first."""
    cases = pd.concat([table.assign(fold=fold, dsc=case_dsc(table)) for fold, table in folds], ignore_index=True)
    return cases[["fold", "case", "dsc", *[c for c in cases.columns if c not in ("fold", "case", "dsc")]]]
