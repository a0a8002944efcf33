"""Reports of runs:

    lwnas report RUN_DIR [--size N] [--out DIR]          # one run
    lwnas report RUN [RUN ...] --out DIR                 # several: seeds, searched vs random

One run: the derived network's complexity per op, cell and network beside a plain U-Net at the
same input size. Several: search runs across seeds (cost mean and spread, op histogram per cell
type, the edges the seeds agree on) and retrained runs side by side (test DSC/MIoU, params,
FLOPs, CPU latency, activation memory) with the mean and standard deviation of each group:
the searched genotype, its cost-matched random baselines, the baselines. Writes CSVs and
``report.md``.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN",
                        help="search or retrain run directories (or one genotype file)")
    parser.add_argument("--size", type=int, nargs="+",
                        help="input size (default: the size the run used)")
    parser.add_argument("--out", type=Path, help="where to write (default: the run directory)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="timed forward passes")


def run(args: argparse.Namespace) -> int:
    from nas.pictures.report import report_runs
    from nas.presets import SEED_RESULTS
    from nas.run.networks import run_network

    _, paths = report_runs(args.run_dirs, args.out, args.size, device=args.device,
                           repeats=args.repeats, seed_results=SEED_RESULTS,
                           network_of=run_network)
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    return 0
