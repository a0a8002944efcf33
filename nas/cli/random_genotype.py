"""The cost-matched random baseline of a searched genotype:

    lwnas random-genotype --like RUN/genotype.json --seed K --out FILE

Draws genotypes from the search's own space (layout, widths, primitives, two distinct inputs
per node, the search's cap on parameter-free ops) and keeps the first whose params and FLOPs
are both within --tolerance of the reference's; where none of --tries draws is, the closest
have ops swapped towards the reference's cost until one is (a searched genotype in the tail of
the space's costs), and where none gets there either, it fails in one line naming the gap.
``retrain.py --genotype FILE`` then trains it on the searched run's splits, exactly like the
searched genotype.
"""
from __future__ import annotations

import argparse

from .common import add_overwrite_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nas.search.random_genotype import COST_TOLERANCE, MAX_TRIES

    parser.add_argument("--like", required=True, help="genotype.json of a search")
    parser.add_argument("--seed", type=int, required=True, help="one baseline per seed")
    parser.add_argument("--out", required=True, help="genotype file to write")
    add_overwrite_flag(parser, "an existing --out file")
    parser.add_argument("--tolerance", type=float, default=COST_TOLERANCE,
                        help=f"relative cost gap allowed (default {COST_TOLERANCE})")
    parser.add_argument("--tries", type=int, default=MAX_TRIES, dest="max_tries",
                        help=f"uniform draws before the closest are repaired (default {MAX_TRIES})")


def run(args: argparse.Namespace) -> int:
    from nas.run.random_baseline import random_baseline

    record = random_baseline(args.like, args.seed, args.out, tolerance=args.tolerance,
                             max_tries=args.max_tries, overwrite=args.overwrite)
    repaired = (f", {record['repaired_ops']} op(s) swapped towards the cost (no draw matched)"
                if record["repaired_ops"] else "")
    print(f"{args.out}: {record['params'] / 1e6:.4f}M params ({record['params_gap']:+.1%}), "
          f"{record['flops'] / 1e9:.4f} GFLOPs ({record['flops_gap']:+.1%}) against "
          f"{args.like}, after {record['tries']} draw(s){repaired}")
    return 0
