"""Complexity report of a derived network beside a plain U-Net at the same input size:

    lwnas report RUN_DIR [--size N] [--out DIR]

Reads the run's ``genotype.json`` (a search run) or the genotype a retrain run names, and
writes ``report_network.csv``, ``report_cells.csv``, ``report_ops.csv`` and ``report.md``.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="search or retrain run (or a genotype file)")
    parser.add_argument("--size", type=int, nargs="+",
                        help="input size (default: the size the run used)")
    parser.add_argument("--out", type=Path, help="where to write (default: the run directory)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="timed forward passes")


def run(args: argparse.Namespace) -> int:
    from nas.pictures.report import report_run

    _, paths = report_run(args.run_dir, args.size, args.out, device=args.device,
                          repeats=args.repeats)
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    return 0
