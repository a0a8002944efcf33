"""Several runs side by side: does the search beat random, and does another seed find the same?

``lwnas report RUN [RUN ...]`` reads each run directory:

- search runs (``genotype.json`` and ``log.csv``): the derived network's params, FLOPs and
  latency, its decision margins, and across runs (seeds) the mean and spread of the costs, the
  op histogram per cell type, and which edges (node <- input) the runs agree on;
- retrained runs (``metrics.json``): test DSC / MIoU (3D BraTS runs: the Dice of WT, TC, ET
  and their mean), params, FLOPs (at the run's input: the 2D image or the 3D training crop),
  CPU latency and activation memory, grouped by what was trained (the searched genotype, a
  cost-matched random one, a hand-designed network) with the mean and standard deviation over
  the runs of a group (seeds).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from nas.complexity import activation_memory, measure_latency
from nas.search.genotype_file import load_genotype_file
from supernet import Genotype, from_genotype

from .style import DPI


@dataclass
class Run:
    """One run directory as the comparison sees it."""

    path: Path
    kind: str  # "search" or "retrain"
    label: str  # the group it belongs to: searched, random, or a model name
    genotype: Genotype | None
    metadata: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    log: pd.DataFrame | None = None


def _label_of(metadata: dict[str, Any]) -> str:
    return "random (cost-matched)" if metadata.get("random_baseline") else "searched"


def load_run(path: str | Path) -> Run:
    """A search or retrain run; anything else is a one-line error naming the folder."""
    path = Path(path)
    metrics_file, genotype_file, log_file = (path / "metrics.json", path / "genotype.json",
                                             path / "log.csv")
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        genotype, metadata = None, {}
        if metrics.get("genotype"):
            named = Path(metrics["genotype"])
            if named.is_file():
                genotype, metadata = load_genotype_file(named)
        label = metrics.get("model") if metrics.get("model") not in (None, "genotype") else None
        return Run(path, "retrain", label or _label_of(metadata), genotype, metadata, metrics)
    if genotype_file.is_file() and log_file.is_file():
        genotype, metadata = load_genotype_file(genotype_file)
        return Run(path, "search", _label_of(metadata), genotype, metadata,
                   log=pd.read_csv(log_file))
    raise FileNotFoundError(f"{path}: neither a retrain run (metrics.json) nor a search run "
                            "(genotype.json and log.csv)")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def search_tables(runs: Sequence[Run]) -> dict[str, pd.DataFrame]:
    """Per search run, across runs (mean/std/min/max), op histogram, edge agreement."""
    rows = []
    for run in runs:
        last = run.log.iloc[-1]
        rows.append({"run": str(run.path), "seed": (run.metadata.get("search") or {}).get("seed"),
                     "epochs": len(run.log),
                     "derived_params_M": float(last["derived_params_M"]),
                     "derived_flops_G": float(last["derived_flops_G"]),
                     "derived_latency_ms": float(last.get("derived_latency_ms", float("nan"))),
                     "val_dsc": float(last.get("val_dsc", float("nan"))),
                     "margin_median": float(last.get("margin_median", float("nan"))),
                     "noise_margin": float(last.get("noise_margin", float("nan"))),
                     "parameter_free_share": float(last["parameter_free_share"])})
    per_run = pd.DataFrame(rows)
    spread = []
    for column in ("derived_params_M", "derived_flops_G", "derived_latency_ms", "val_dsc",
                   "margin_median", "parameter_free_share"):
        mean, std = _mean_std(per_run[column])
        spread.append({"quantity": column, "mean": mean, "std": std,
                       "min": per_run[column].min(), "max": per_run[column].max()})
    histogram: Counter = Counter()
    edges: dict[tuple[str, int, int], Counter] = {}
    for run in runs:
        for key, cell in run.genotype.cells.items():
            for node, pairs in enumerate(cell):
                for op, source in pairs:
                    histogram[(key, op)] += 1
                    edges.setdefault((key, node, source), Counter())[op] += 1
    ops_rows = [{"cell_type": key, "op": op, "count": count,
                 "share": count / sum(c for (k, _), c in histogram.items() if k == key)}
                for (key, op), count in sorted(histogram.items())]
    edge_rows = []
    for (key, node, source), chosen in sorted(edges.items()):
        op, count = chosen.most_common(1)[0]
        edge_rows.append({"cell_type": key, "node": node, "input": source,
                          "runs_choosing_edge": sum(chosen.values()) / len(runs),
                          "most_common_op": op, "op_agreement": count / len(runs)})
    return {"searches": per_run, "search_spread": pd.DataFrame(spread),
            "op_histogram": pd.DataFrame(ops_rows), "edge_agreement": pd.DataFrame(edge_rows)}


#: ``network_of(run)``: the retrained network of a run (None: not rebuildable), e.g. from its
#: self-describing ``best.pt`` (``nas.cli.report`` passes that one in: imports run one way).
NetworkOf = Callable[[Run], Optional[nn.Module]]


def _network_costs(run: Run, repeats: int, network_of: NetworkOf | None = None) -> dict[str, float]:
    """CPU latency (batch 1, median) and activation memory of a retrained network: the one
    ``network_of`` rebuilds, else the genotype's."""
    network = network_of(run) if network_of is not None else None
    if network is None and run.genotype is not None:
        network = from_genotype(run.genotype)
    if network is None or not run.metrics.get("input_shape"):
        return {"latency_ms": float("nan"), "memory_MB": float("nan")}
    network = network.eval()
    shape = (1,) + tuple(run.metrics["input_shape"])
    timing = measure_latency(network, shape, warmup=2, repeats=repeats)
    return {"latency_ms": timing["median_ms"],
            "memory_MB": activation_memory(network, shape) / 2**20}


def _region_columns(runs: Sequence[Run]) -> list[str]:
    """The regions (BraTS WT/TC/ET, their mean) of 3D runs' test Dice (``metrics["dice"]``),
    in the order the first such run lists them; none for 2D runs."""
    regions: list[str] = []
    for run in runs:
        for region in run.metrics.get("dice") or {}:
            if region not in regions:
                regions.append(region)
    return regions


def retrain_tables(runs: Sequence[Run], repeats: int = 10,
                   network_of: NetworkOf | None = None) -> dict[str, pd.DataFrame]:
    """Per retrained run, and per group the mean and standard deviation over its runs."""
    rows = []
    regions = _region_columns(runs)
    for run in runs:
        metrics = run.metrics
        rows.append({"run": str(run.path), "label": run.label,
                     "dataset": metrics.get("dataset"), "dsc": metrics.get("dsc"),
                     "miou": metrics.get("miou"),
                     **{f"dice_{region.lower()}": (metrics.get("dice") or {}).get(region)
                        for region in regions},
                     "params_M": (metrics.get("params") or float("nan")) / 1e6,
                     "flops_G": (metrics.get("flops") or float("nan")) / 1e9,
                     "input": "x".join(map(str, metrics.get("input_shape") or [])),
                     **_network_costs(run, repeats, network_of)})
    per_run = pd.DataFrame(rows)
    groups = []
    for label, group in per_run.groupby("label", sort=False):
        row = {"label": label, "runs": len(group)}
        for column in ("dsc", "miou", *(f"dice_{r.lower()}" for r in regions), "params_M",
                       "flops_G", "latency_ms", "memory_MB"):
            row[f"{column}_mean"], row[f"{column}_std"] = _mean_std(group[column].tolist())
        groups.append(row)
    return {"retrained": per_run, "retrained_groups": pd.DataFrame(groups)}


def compare_runs(paths: Sequence[str | Path], repeats: int = 10,
                 network_of: NetworkOf | None = None) -> dict[str, pd.DataFrame]:
    """Every table the runs allow (search tables for search runs, retrain tables for
    retrained ones; ``network_of`` rebuilds a retrained run's network for its latency)."""
    runs = [load_run(path) for path in paths]
    tables: dict[str, pd.DataFrame] = {}
    searches = [run for run in runs if run.kind == "search"]
    retrained = [run for run in runs if run.kind == "retrain"]
    if searches:
        tables.update(search_tables(searches))
    if retrained:
        tables.update(retrain_tables(retrained, repeats, network_of))
    return tables


def comparison_figure(retrained: pd.DataFrame, dataset: str | None = None,
                      seed_results: Mapping[str, Mapping[str, float]] | None = None) -> Figure:
    """Test DSC against params and against FLOPs (log axes), one marker per retrained run,
    one colour per group, with seed 002's reported point for ``dataset`` marked when
    ``seed_results`` (``nas.presets.SEED_RESULTS``) has one (its FLOPs are at 256x256: compare
    runs at that size, e.g. with ``--macro seed``)."""
    figure = Figure(figsize=(9.0, 3.8), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, 2)
    seed = (seed_results or {}).get(dataset or "")
    for ax, column, unit in ((axes[0], "params_M", "params (M)"), (axes[1], "flops_G", "GFLOPs")):
        for index, (label, group) in enumerate(retrained.groupby("label", sort=False)):
            colour = _GROUP_COLOURS[index % len(_GROUP_COLOURS)]
            ax.scatter(group[column], group["dsc"], label=label, color=colour, s=28)
        if seed is not None:
            ax.scatter([seed[column]], [seed["dsc"]], marker="*", s=140, color="black",
                       label=f"seed 002 ({dataset}, 256x256)")
        ax.set_xscale("log")
        ax.set_xlabel(unit)
        ax.set_ylabel("test DSC")
        ax.grid(alpha=0.3, which="both")
    axes[1].legend(fontsize=7, loc="lower right")
    return figure


_GROUP_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
