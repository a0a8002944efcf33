"""The flags and the action of the sample-data command (``python -m data.sample``,
``lwnas sample``)."""

from __future__ import annotations

import argparse

from data.presets import list_datasets
from data.sample import write_sample
from data.sample.brats import YEARS
from data.sample.nnunet import VARIANTS

#: The writer's argument that sets how many cases a sample set has.
CASE_COUNT_OPTION = {"dsb2018": "images", "brats": "cases", "promise12": "cases", "nnunet": "cases"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=list_datasets() + ["all"])
    parser.add_argument("--out", required=True, help="folder to write into (a subfolder per dataset with 'all')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--year", choices=YEARS, default=None, help="BraTS release layout (default 2021)")
    parser.add_argument("--parts", action="store_true", help="PROMISE12: under TrainingData_Part1/2/3")
    parser.add_argument("--cases", type=int, help="how many cases (images for DSB2018; default: the writer's)")
    parser.add_argument("--variant", choices=VARIANTS, default=None,
                        help="nnunet: nnU-Net v2 NIfTI (default), 2D PNG, or the Decathlon layout")


def run(args: argparse.Namespace) -> int:
    names = list_datasets() if args.dataset == "all" else [args.dataset]
    for name in names:
        options = {}
        if name == "brats" and args.year:
            options["year"] = args.year
        if name == "promise12" and args.parts:
            options["parts"] = True
        if getattr(args, "cases", None) and name in CASE_COUNT_OPTION:
            options[CASE_COUNT_OPTION[name]] = args.cases
        if name == "nnunet" and args.variant:
            options["variant"] = args.variant
        out = f"{args.out}/{name}" if args.dataset == "all" else args.out
        print(f"{name}: {write_sample(name, out, seed=args.seed, **options)}")
    return 0
