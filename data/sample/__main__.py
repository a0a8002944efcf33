"""`python -m data.sample --dataset NAME --out DIR`: write a sample data set."""

from __future__ import annotations

import argparse
import sys

from data.presets import list_datasets
from data.sample import write_sample
from data.sample.brats import YEARS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.sample", description=__doc__)
    parser.add_argument("--dataset", required=True, choices=list_datasets() + ["all"])
    parser.add_argument("--out", required=True, help="folder to write into (a subfolder per dataset with 'all')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--year", choices=YEARS, default=None, help="BraTS release layout (default 2021)")
    parser.add_argument("--parts", action="store_true", help="PROMISE12: under TrainingData_Part1/2/3")
    args = parser.parse_args(argv)
    names = list_datasets() if args.dataset == "all" else [args.dataset]
    for name in names:
        options = {}
        if name == "brats" and args.year:
            options["year"] = args.year
        if name == "promise12" and args.parts:
            options["parts"] = True
        out = f"{args.out}/{name}" if args.dataset == "all" else args.out
        print(f"{name}: {write_sample(name, out, seed=args.seed, **options)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
