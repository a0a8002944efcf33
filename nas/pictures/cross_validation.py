"""Folds runs side by side (``lwnas report RUN [RUN ...]`` where each RUN is a ``retrain.py
--folds`` run): does the searched network beat the baselines on held-out folds, and at what cost?

Each run is read from its top (``cv_metrics.json``, ``cv_cases.csv``: ``nas.run.cv_metrics``)
and its first fold's run directory (what was trained: the searched genotype, a cost-matched
random one, a named baseline; its network for the latency). Tables:

- ``cv_runs``: per run, the mean and sd over the folds of the test DSC and MIoU (and of each
  class's DSC), params, FLOPs (at the run's input), CPU latency and activation memory of one
  network (the folds share the architecture; an ensemble of K costs K times the FLOPs);
- ``cv_folds``: per run and fold, the fold's test DSC, MIoU, cases, params, FLOPs;
- ``paired``: the searched network (the run labelled so, else the first run) against each other
  run, by the Wilcoxon signed-rank test on the per-case DSC pooled over the folds' test cases
  (``nas.metrics.compare_paired``): wins, ties or loses, the median difference and p, whether
  both were tested on the same folds, and the cost ratios (params, FLOPs, latency: searched /
  other).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from matplotlib.figure import Figure

from nas.metrics import compare_paired
from nas.metrics.cross_validation import CV_CASES, CV_METRICS

from .comparison import NetworkOf, Run, _network_costs, load_run
from .style import DPI

#: The label of the network the others are compared against, where a run has it.
SEARCHED = "searched"


@dataclass
class FoldsRun:
    """One folds run as the report sees it: ``name`` (its label, with the folder where two runs
    share one), its first fold's run, its summary and its pooled per-case table."""

    path: Path
    first: Run
    summary: dict[str, Any]
    cases: pd.DataFrame
    name: str = ""

    @property
    def label(self) -> str:
        return self.first.label


def is_folds_run(path: str | Path) -> bool:
    """Whether ``path`` is the directory of a folds run (``cv_metrics.json``, or a ``splits.json``
    with folds whose folds are not all done)."""
    path = Path(path)
    if (path / CV_METRICS).is_file():
        return True
    try:
        return bool(json.loads((path / "splits.json").read_text()).get("folds"))
    except (OSError, ValueError, AttributeError):
        return False


def load_folds_run(path: str | Path) -> FoldsRun:
    """A folds run whose every fold is done; else one line naming what is missing."""
    path = Path(path)
    if not (path / CV_METRICS).is_file():
        raise FileNotFoundError(f"{path}: a folds run without {CV_METRICS}: not every fold is done yet "
                                "(resume it with retrain.py --resume)")
    summary = json.loads((path / CV_METRICS).read_text())
    first = load_run(path / summary["fold_dirs"][0])
    return FoldsRun(path, first, summary, pd.read_csv(path / CV_CASES))


def _names(runs: Sequence[FoldsRun]) -> None:
    """Each run's name: its label, or where two runs share a label, the label and the folder."""
    labels = [run.label for run in runs]
    for run in runs:
        run.name = run.label if labels.count(run.label) == 1 else f"{run.label} ({run.path.name})"


def reference(runs: Sequence[FoldsRun]) -> int:
    """The index of the run the others are compared against: the searched one, else the first."""
    return next((index for index, run in enumerate(runs) if run.label == SEARCHED), 0)


def _value(summary: dict[str, Any], row: str, key: str) -> float:
    value = (summary.get(row) or {}).get(key)
    return math.nan if value is None else float(value)


def folds_tables(runs: Sequence[FoldsRun], repeats: int = 10,
                 network_of: NetworkOf | None = None) -> dict[str, pd.DataFrame]:
    """The ``cv_runs``, ``cv_folds`` and ``paired`` tables of the runs (see the module)."""
    _names(runs)
    rows, fold_rows, costs = [], [], []
    for run in runs:
        summary = run.summary
        cost = _network_costs(run.first, repeats, network_of)
        costs.append(cost)
        classes = [key for key in summary.get("mean", {}) if key.startswith(("dsc/", "dice/"))]
        rows.append({"network": run.name, "run": str(run.path), "dataset": summary.get("dataset"),
                     "folds": summary.get("folds"), "cases": summary.get("cases"),
                     **{f"{key}_{part}": _value(summary, row, key) for key in ("dsc", "miou", *classes)
                        for part, row in (("mean", "mean"), ("sd", "sd"))},
                     "params_M": _value(summary, "mean", "params") / 1e6,
                     "flops_G": _value(summary, "mean", "flops") / 1e9, **cost})
        for fold in summary.get("per_fold", []):
            fold_rows.append({"network": run.name, "dataset": summary.get("dataset"),
                              "fold": fold["fold"], "cases": fold.get("cases"),
                              "dsc": math.nan if fold.get("dsc") is None else fold["dsc"],
                              "miou": math.nan if fold.get("miou") is None else fold["miou"],
                              "params_M": (fold.get("params") or math.nan) / 1e6,
                              "flops_G": (fold.get("flops") or math.nan) / 1e9})
    return {"cv_runs": pd.DataFrame(rows), "cv_folds": pd.DataFrame(fold_rows),
            **({"paired": paired_table(runs, costs)} if len(runs) > 1 else {})}


def _ratio(first: float, second: float) -> float:
    return first / second if second and not math.isnan(second) else math.nan


def paired_table(runs: Sequence[FoldsRun], costs: Sequence[dict[str, float]]) -> pd.DataFrame:
    """The reference run (:func:`reference`) against each other run, on the per-case DSC."""
    index = reference(runs)
    ours = runs[index]
    ours_dsc = dict(zip(ours.cases["case"].astype(str), ours.cases["dsc"].astype(float)))
    ours_folds = dict(zip(ours.cases["case"].astype(str), ours.cases["fold"]))
    rows = []
    for other_index, other in enumerate(runs):
        if other_index == index:
            continue
        theirs = dict(zip(other.cases["case"].astype(str), other.cases["dsc"].astype(float)))
        their_folds = dict(zip(other.cases["case"].astype(str), other.cases["fold"]))
        result = compare_paired(ours_dsc, theirs)
        rows.append({
            "network": ours.name, "against": other.name, "verdict": result.verdict, "cases": result.cases,
            "median_difference": result.median_difference, "p_value": result.p_value,
            "same_folds": ours_folds == their_folds,
            "dsc_mean": _value(ours.summary, "mean", "dsc"), "against_dsc_mean": _value(other.summary, "mean", "dsc"),
            "params_ratio": _ratio(_value(ours.summary, "mean", "params"), _value(other.summary, "mean", "params")),
            "flops_ratio": _ratio(_value(ours.summary, "mean", "flops"), _value(other.summary, "mean", "flops")),
            "latency_ratio": _ratio(costs[index]["latency_ms"], costs[other_index]["latency_ms"]),
            "summary": result.text()})
    return pd.DataFrame(rows)


def verdict_lines(paired: pd.DataFrame) -> list[str]:
    """One sentence per comparison: ``searched wins against unet2d (median +0.031, p=0.008, 12
    cases) at 0.0061x its params, 0.024x its FLOPs and 1.1x its CPU latency``."""
    lines = []
    for row in paired.to_dict("records"):
        costs = ", ".join(f"{row[key]:.3g}x its {what}" for key, what in (
            ("params_ratio", "params"), ("flops_ratio", "FLOPs"), ("latency_ratio", "CPU latency"))
            if not math.isnan(row[key]))
        folds = "" if row["same_folds"] else " (tested on other folds: the cases pair, the folds differ)"
        test = (f"(median {row['median_difference']:+.3f}, p={row['p_value']:.3g}, {row['cases']} cases)"
                if row["cases"] else "(no case scored by both)")
        lines.append(f"- {row['network']} {row['verdict']} against {row['against']} {test}"
                     f"{' at ' + costs if costs else ''}{folds}")
    return lines


def folds_figure(per_fold: pd.DataFrame) -> Figure:
    """Test DSC per fold, one line per run (its mean +- sd over the folds in the legend)."""
    figure = Figure(figsize=(6.0, 3.6), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    for index, (name, group) in enumerate(per_fold.groupby("network", sort=False)):
        scores = group["dsc"].astype(float)
        spread = f" +- {scores.std(ddof=1):.3f}" if len(scores) > 1 else ""
        ax.plot(group["fold"], scores, marker="o", color=_COLOURS[index % len(_COLOURS)],
                label=f"{name}: {scores.mean():.3f}{spread}")
    ax.set_xlabel("fold")
    ax.set_ylabel("test DSC")
    ax.set_xticks(sorted(per_fold["fold"].unique()))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return figure


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")

__all__ = ["FoldsRun", "SEARCHED", "folds_figure", "folds_tables", "is_folds_run", "load_folds_run",
           "paired_table", "reference", "verdict_lines"]
