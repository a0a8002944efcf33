"""Complexity report of a derived network beside a plain U-Net at the same input size.

``lwnas report RUN_DIR`` reads the run's ``genotype.json`` (a search run) or the
genotype a retrain run names, and writes into RUN_DIR (or ``--out``):

- ``report_network.csv``: ours vs the U-Net baseline: params, FLOPs (MACs), latency,
  activation memory, and the ratios;
- ``report_cells.csv``: per cell (kind, scale, width): params, FLOPs, latency;
- ``report_ops.csv``: per op instance of every cell: params and FLOPs;
- ``report.md``: the three tables in markdown. The tables are printed too.

Folds runs (``retrain.py --folds``) are reported together: the cross-validated tables and the
paired test of the searched network against each other run (``cross_validation``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from nas.complexity import activation_memory, measure_latency, profile, profile_layers
from nas.search.genotype_file import load_genotype_file
from nas.train.files import atomic_write_text
from supernet import Genotype, from_genotype


def find_genotype(run_dir: Path) -> Path:
    """The genotype of a search run, or the one a retrain run was trained from."""
    if run_dir.is_file():
        return run_dir
    candidate = run_dir / "genotype.json"
    if candidate.is_file():
        return candidate
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        named = Path(json.loads(metrics.read_text())["genotype"])
        if named.is_file():
            return named
    raise FileNotFoundError(f"{run_dir}: no genotype.json here, nor a metrics.json naming one")


def baseline_unet(genotype: Genotype) -> nn.Module:
    """The plain U-Net the seed compares against, in the genotype's dimensionality."""
    import models

    return models.plain_unet(genotype.in_channels, genotype.num_classes, genotype.spatial_dims)


def _cell_latencies(network: nn.Module, x: torch.Tensor, repeats: int) -> list[float]:
    """Median forward time of each cell inside the whole network's forward (ms)."""
    times: dict[int, list[float]] = {i: [] for i in range(len(network.cells))}
    starts: dict[int, float] = {}
    cuda = x.device.type == "cuda"

    def before(index):
        def hook(module, inputs):
            if cuda:
                torch.cuda.synchronize(x.device)
            starts[index] = time.perf_counter()
        return hook

    def after(index):
        def hook(module, inputs, output):
            if cuda:
                torch.cuda.synchronize(x.device)
            times[index].append((time.perf_counter() - starts[index]) * 1000)
        return hook

    handles = []
    for index, cell in enumerate(network.cells):
        handles.append(cell.register_forward_pre_hook(before(index)))
        handles.append(cell.register_forward_hook(after(index)))
    try:
        with torch.inference_mode():
            network(x)  # warm-up
            for values in times.values():
                values.clear()
            for _ in range(repeats):
                network(x)
    finally:
        for handle in handles:
            handle.remove()
    return [float(torch.tensor(v).median()) for v in times.values()]


def build_report(genotype: Genotype, input_size: Sequence[int], *, device: str = "cpu",
                 repeats: int = 5) -> dict[str, pd.DataFrame]:
    """The network, cell and op tables for one image of ``input_size`` (spatial)."""
    shape = (1, genotype.in_channels) + tuple(input_size)
    ours = from_genotype(genotype).to(device).eval()
    baseline = baseline_unet(genotype).to(device).eval()
    rows = []
    for name, network in (("derived", ours), ("unet_baseline", baseline)):
        counts = profile(network, shape)
        latency = measure_latency(network, shape, warmup=1, repeats=repeats)
        rows.append({"network": name, "params_M": counts["params"] / 1e6,
                     "flops_G": counts["flops"] / 1e9, "latency_ms": latency["median_ms"],
                     "activation_MB": activation_memory(network, shape) / 2**20})
    network_table = pd.DataFrame(rows)
    for column in ("params_M", "flops_G", "latency_ms", "activation_MB"):
        network_table[f"{column}_ratio"] = network_table[column] / network_table[column].iloc[1]

    records = profile_layers(ours, shape)
    x = torch.randn(*shape, device=device)
    latencies = _cell_latencies(ours, x, repeats)
    cell_rows, op_rows = [], []
    for index in range(len(ours.cells)):
        prefix = f"cells.{index}."
        inside = [r for r in records if r["name"].startswith(prefix)]
        cell_rows.append({
            "cell": index, "kind": ours.cell_kinds[index],
            "scale": f"1/{2 ** ours.cell_levels[index]}", "width": ours.cell_widths[index],
            "params_k": sum(r["params"] for r in inside) / 1e3,
            "flops_M": sum(r["macs"] for r in inside) / 1e6, "latency_ms": latencies[index]})
        for node, node_genotype in enumerate(genotype.cell_of(index)):
            for position, (op, source) in enumerate(node_genotype):
                op_prefix = f"{prefix}node_ops.{node}.{position}."
                mine = [r for r in records if r["name"].startswith(op_prefix)
                        or r["name"] == op_prefix[:-1]]
                op_rows.append({"cell": index, "kind": ours.cell_kinds[index], "node": node,
                                "input": source, "op": op,
                                "params_k": sum(r["params"] for r in mine) / 1e3,
                                "flops_M": sum(r["macs"] for r in mine) / 1e6})
    return {"network": network_table, "cells": pd.DataFrame(cell_rows),
            "ops": pd.DataFrame(op_rows)}


def write_report(tables: dict[str, pd.DataFrame], out_dir: Path, title: str,
                 notes: Sequence[str] = ()) -> list[Path]:
    """The tables as CSVs and ``report.md`` (``notes``: lines under the title)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    markdown = [f"# {title}", "", *notes, *([""] if notes else [])]
    for name, table in tables.items():
        paths.append(atomic_write_text(out_dir / f"report_{name}.csv",
                                       table.to_csv(index=False)))
        markdown += [f"## {name}", "", table.to_markdown(index=False, floatfmt=".4g"), ""]
    paths.append(atomic_write_text(out_dir / "report.md", "\n".join(markdown)))
    return paths


def report_folds_runs(run_dirs: Sequence[Path], out: Path, *, device: str = "cpu", repeats: int = 5,
                      echo: bool = True, seed_results: Mapping[str, Mapping[str, float]] | None = None,
                      network_of: Callable[[Any], nn.Module | None] | None = None
                      ) -> tuple[dict[str, pd.DataFrame], list[Path]]:
    """The report of folds runs (``nas.pictures.cross_validation``): the cross-validated tables,
    the paired verdicts of the searched network against each other run, the DSC-vs-cost picture
    (one marker per fold) and the DSC per fold."""
    from .comparison import comparison_figure
    from .cross_validation import folds_figure, folds_tables, is_folds_run, load_folds_run, verdict_lines
    from .style import save_figure

    others = [str(path) for path in run_dirs if not is_folds_run(path)]
    if others:
        raise ValueError(f"{others[0]}: not a folds run; report folds runs (retrain.py --folds) together, "
                         "other runs apart")
    tables = folds_tables([load_folds_run(path) for path in run_dirs], repeats=repeats, network_of=network_of)
    notes = verdict_lines(tables["paired"]) if "paired" in tables else []
    if echo:
        for name, table in tables.items():
            print(f"\n{name}\n{table.to_string(index=False, float_format=lambda v: f'{v:.4g}')}")
        print("\n" + "\n".join(notes))
    title = f"Cross-validated comparison of {', '.join(str(path) for path in run_dirs)}"
    paths = write_report(tables, out, title, notes)
    per_fold = tables["cv_folds"]
    datasets = per_fold["dataset"].dropna().unique().tolist()
    figure = comparison_figure(per_fold.assign(label=per_fold["network"]),
                               datasets[0] if len(datasets) == 1 else None, seed_results)
    paths.append(save_figure(figure, out / "report_dsc_vs_cost.png"))
    paths.append(save_figure(folds_figure(per_fold), out / "report_cv_folds.png"))
    return tables, paths


def report_runs(run_dirs: Sequence[str | Path], out_dir: str | Path | None = None,
                size: Sequence[int] | None = None, *, device: str = "cpu", repeats: int = 5,
                echo: bool = True, seed_results: Mapping[str, Mapping[str, float]] | None = None,
                network_of: Callable[[Any], nn.Module | None] | None = None
                ) -> tuple[dict[str, pd.DataFrame], list[Path]]:
    """The report of one run (its complexity beside a U-Net, and its row of the comparison) or
    of several (the comparison: searches across seeds, retrained runs by group), written as
    CSVs and ``report.md`` into ``out_dir`` (default: the run directory; needed for several).
    ``seed_results``: the paper's points per data set, marked in the DSC-vs-cost picture;
    ``network_of(run)``: a retrained run's network, for the latency of runs without a genotype."""
    from .comparison import compare_runs

    run_dirs = [Path(path) for path in run_dirs]
    if len(run_dirs) > 1 and out_dir is None:
        raise ValueError("--out is needed to report several runs (where report.md goes)")
    from .cross_validation import is_folds_run

    if any(is_folds_run(path) for path in run_dirs):
        return report_folds_runs(run_dirs, Path(out_dir or run_dirs[0]), device=device, repeats=repeats,
                                 echo=echo, seed_results=seed_results, network_of=network_of)
    tables: dict[str, pd.DataFrame] = {}
    title = f"Report of {', '.join(str(path) for path in run_dirs)}"
    if len(run_dirs) == 1:
        genotype_path = find_genotype(run_dirs[0])
        genotype, metadata = load_genotype_file(genotype_path)
        if size:
            size = list(size) * genotype.spatial_dims if len(size) == 1 else list(size)
        else:
            size = metadata.get("complexity", {}).get("input_shape", [None, 256, 256])[1:]
        tables.update(build_report(genotype, size, device=device, repeats=repeats))
        title = f"Complexity of {genotype_path} at input {'x'.join(map(str, size))}"
    if len(run_dirs) > 1:
        tables.update(compare_runs(run_dirs, repeats=repeats, network_of=network_of))
    elif run_dirs[0].is_dir() and ((run_dirs[0] / "metrics.json").is_file()
                                   or (run_dirs[0] / "log.csv").is_file()):
        tables.update(compare_runs(run_dirs, repeats=repeats, network_of=network_of))  # the run's own summary row
    out = Path(out_dir) if out_dir else (run_dirs[0] if run_dirs[0].is_dir()
                                         else run_dirs[0].parent)
    if echo:
        for name, table in tables.items():
            print(f"\n{name}\n{table.to_string(index=False, float_format=lambda v: f'{v:.4g}')}")
    paths = write_report(tables, out, title)
    if "retrained" in tables:
        from .comparison import comparison_figure
        from .style import save_figure

        datasets = tables["retrained"]["dataset"].dropna().unique().tolist()
        figure = comparison_figure(tables["retrained"], datasets[0] if len(datasets) == 1 else None,
                                   seed_results)
        paths.append(save_figure(figure, out / "report_dsc_vs_cost.png"))
    return tables, paths
