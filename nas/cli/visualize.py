"""Draw the cells, the macro layout, the alpha heat map and the training curves of a search
run (or the pictures of one genotype file) as PNGs:

    lwnas visualize RUN_DIR_or_GENOTYPE_JSON [--out DIR]
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a run directory (genotype.json, log.csv, alphas.json) "
                                       "or a genotype JSON file")
    parser.add_argument("--out", help="folder for the PNGs (default: RUN_DIR/figures, or "
                                      "GENOTYPE_figures beside a genotype file)")


def run(args: argparse.Namespace) -> int:
    from nas.pictures import draw_run

    written, problems = draw_run(args.source, args.out)
    for path in written:
        print(path)
    for problem in problems:
        print(f"lwnas visualize: {problem}", file=sys.stderr)
    return 1 if problems else 0
