"""The per-case rule of every ``lwnas predict`` (BraTS cases, images, series and volumes alike):
a case that cannot be read or written is one failure line and the others are still predicted,
and the scores of the cases done so far are written even if a case crashes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import data
from nas.metrics import case_table, write_tables
from nas.train.settings import one_line

#: The metrics tables of a prediction: ``metrics_cases.csv`` and ``metrics_summary.csv``.
METRICS_PREFIX = "metrics"


@dataclass(frozen=True)
class PredictionReport:
    """What ``predict`` did: the NIfTI files written, one line per case that failed (naming
    its file), one line per predicted case whose segmentation could not score it, and the
    metrics tables (empty when no case had a usable segmentation)."""

    predictions: list[Path]
    failures: list[str]
    metrics_files: tuple[Path, ...] = ()
    unscored: list[str] = field(default_factory=list)


def predict_cases(cases: Iterable[Any], output_dir: Path, *, name: Callable[[Any], str],
                  read: Callable[[Any], tuple[Any, dict]], read_label: Callable[[Any, dict], Any],
                  segment: Callable[[Any, dict], Any], target: Callable[[Any], Path],
                  write: Callable[[Any, Any, dict], Path], score: Callable[[Any, Any, dict], dict[str, float]],
                  summary: Callable[[dict[str, float]], str],
                  say: Callable[[str], None] | None = None) -> PredictionReport:
    """The per-case rule of every ``lwnas predict``: a case that cannot be read, or whose output
    cannot be written (at ``target(case)``), is one failure line naming the file and the others
    are still predicted; a label that cannot be read leaves its case predicted but unscored; the
    scores of the cases done so far are written (``metrics_cases.csv``, ``metrics_summary.csv``)
    even if a case crashes. ``segment(image, meta)`` is what ``write`` and ``score`` take."""
    written: list[Path] = []
    failures: list[str] = []
    unscored: list[str] = []
    rows: list[dict[str, Any]] = []
    metrics_files: tuple[Path, ...] = ()
    try:
        for case in cases:
            try:
                image, meta = read(case)
            except data.DataError as error:
                failures.append(str(error))
                continue
            try:  # the labels only score the case: bad ones do not stop its prediction
                truth = read_label(case, meta)
            except data.DataError as error:
                truth = None
                unscored.append(str(error))
            segmentation = segment(image, meta)
            try:
                path = write(case, segmentation, meta)
            except (OSError, data.DataError) as error:
                failures.append(f"{target(case)}: could not be written ({one_line(error)})")
                continue
            written.append(path)
            line = f"{name(case)}: {path}"
            if truth is not None:
                scores = score(segmentation, truth, meta)
                rows.append({"case": name(case), **scores})
                line += f" ({summary(scores)})"
            if say is not None:
                say(line)
    finally:
        if rows:
            metrics_files = write_tables(case_table(rows), output_dir, METRICS_PREFIX)
    return PredictionReport(written, failures, metrics_files, unscored)


__all__ = ["METRICS_PREFIX", "PredictionReport", "predict_cases"]
