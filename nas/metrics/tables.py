"""Per-case and summary tables of metric results, and the cumulative base class.

Import these from `nas.metrics`. Depends on pandas, numpy and torch only.
A result row is a dict ``{"case": id (optional), "<metric>/<region>": value, ...}``
as `nas.metrics.evaluate_case` returns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

__all__ = ["CumulativeMetric", "case_table", "summary_table", "table_names", "write_tables", "gather_rows"]

CASE_COLUMN = "case"
SUMMARY_COLUMNS = ("metric", "region", "mean", "std", "median", "count")


def case_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per case, one column per ``metric/region`` (``case`` first when present)."""
    table = pd.DataFrame(list(rows))
    if CASE_COLUMN in table.columns:
        table = table[[CASE_COLUMN, *[column for column in table.columns if column != CASE_COLUMN]]]
    return table


def summary_table(cases: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (sample, ddof=1), median and count per ``metric/region`` column.

    Columns: metric, region ("" for a binary case), mean, std, median, count.
    NaN entries (e.g. RAVD of an empty truth) are left out of the statistics and
    so show up as a count below the number of cases.
    """
    records = []
    for column in cases.columns:
        if column == CASE_COLUMN or not pd.api.types.is_numeric_dtype(cases[column]):
            continue
        metric, _, region = str(column).partition("/")
        values = cases[column].astype(float)
        records.append(
            {
                "metric": metric,
                "region": region,
                "mean": values.mean(),
                "std": values.std(ddof=1),
                "median": values.median(),
                "count": int(values.count()),
            }
        )
    return pd.DataFrame.from_records(records, columns=list(SUMMARY_COLUMNS))


def table_names(prefix: str) -> tuple[str, str]:
    """The file names of :func:`write_tables`: ``<prefix>_cases.csv`` and ``<prefix>_summary.csv``."""
    return f"{prefix}_cases.csv", f"{prefix}_summary.csv"


def write_tables(cases: pd.DataFrame, out_dir: str | Path, prefix: str) -> tuple[Path, Path]:
    """Write ``<prefix>_cases.csv`` and ``<prefix>_summary.csv`` into ``out_dir``; return both paths.

    Under DistributedDataParallel call it on rank 0 only.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cases_path, summary_path = (out_dir / name for name in table_names(prefix))
    cases.to_csv(cases_path, index=False)
    summary_table(cases).to_csv(summary_path, index=False)
    return cases_path, summary_path


def gather_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All ranks' rows in rank order when torch.distributed is initialised; else ``rows``."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(rows)
    gathered: list[list[dict[str, Any]] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, rows)
    return [row for part in gathered for row in (part or [])]


def per_case_spacing(
    spacing: Sequence[float] | Sequence[Sequence[float]] | np.ndarray | torch.Tensor | None,
    cases: int,
    default: Sequence[float] | None,
) -> list[Sequence[float] | None]:
    """One spacing per case from None (the default), one shared spacing, or one row per case."""
    if spacing is None:
        return [default] * cases
    values = np.asarray(spacing.detach().cpu() if isinstance(spacing, torch.Tensor) else spacing, dtype=float)
    if values.ndim == 1:
        return [tuple(values)] * cases
    if values.ndim != 2 or values.shape[0] != cases:
        raise ValueError(f"spacing must be one tuple or one per case ({cases}), got shape {values.shape}")
    return [tuple(row) for row in values]


class CumulativeMetric:
    """Buffers per-case result rows over batches; `aggregate` returns the case and summary tables.

    Subclasses implement `compute_batch`. Under torch.distributed, `aggregate`
    all-gathers every rank's rows (``all_gather_object``; under NCCL each rank
    must have set its CUDA device), so every rank gets the full tables. When
    ``case_ids`` are given, a case seen twice (DistributedSampler pads the last
    batch by repeating cases) is kept once.
    """

    def __init__(self, spacing: Sequence[float] | None = None) -> None:
        self.default_spacing = spacing  # used when update() gets no spacing
        self._rows: list[dict[str, Any]] = []

    def compute_batch(
        self, pred_batch: Any, truth_batch: Any, spacings: list[Sequence[float] | None]
    ) -> list[dict[str, float]]:
        """Score each case of a batch; one row dict per case."""
        raise NotImplementedError

    def update(
        self,
        pred_batch: Any,
        truth_batch: Any,
        spacing: Sequence[float] | Sequence[Sequence[float]] | torch.Tensor | None = None,
        case_ids: Sequence[Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Score a batch and buffer its rows; returns them. ``spacing``: shared or one per case."""
        cases = len(pred_batch)
        rows = self.compute_batch(pred_batch, truth_batch, per_case_spacing(spacing, cases, self.default_spacing))
        if case_ids is not None:
            if len(case_ids) != cases:
                raise ValueError(f"{len(case_ids)} case ids for a batch of {cases}")
            rows = [{CASE_COLUMN: case_id, **row} for case_id, row in zip(case_ids, rows)]
        self._rows.extend(rows)
        return rows

    def reset(self) -> None:
        """Forget every buffered case."""
        self._rows = []

    def aggregate(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(cases, summary)`` DataFrames over every buffered case of every rank."""
        cases = case_table(gather_rows(self._rows))
        if CASE_COLUMN in cases.columns:
            cases = cases.drop_duplicates(subset=CASE_COLUMN, keep="first").reset_index(drop=True)
        return cases, summary_table(cases)
