"""Train a network from scratch: ``python retrain.py --genotype runs/.../genotype.json``.

Parses flags and calls :mod:`nas.commands`; unset flags keep the dataset's preset (seed 002's
retrain settings). Runs under ``torchrun --nproc_per_node N retrain.py ...`` too.
"""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--genotype", help="genotype.json of a search")
    parser.add_argument("--dataset", help="default: the genotype's dataset")
    parser.add_argument("--data-root", help="real data set root (default: bundled sample data)")
    parser.add_argument("--out", help="run directory (default: runs/DATASET/retrain-TIME)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    parser.add_argument("--splits", dest="splits_file",
                        help="splits.json to use (default: the one beside the genotype)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--drop-path", type=float)
    parser.add_argument("--loss", help="loss name (see nas.losses.list_losses())")
    parser.add_argument("--image-size", type=int, help="2D side length")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                        help="auto: bf16 autocast on CUDA, fp32 on CPU")
    parser.add_argument("--channels-last", action="store_true", default=None)
    parser.add_argument("--compile", action="store_true", default=None,
                        help="torch.compile the network's forward")
    parser.add_argument("--deterministic", action="store_true", default=None,
                        help="deterministic kernels only (slower on CUDA)")
    parser.add_argument("--workers", type=int, dest="num_workers", help="loader workers")
    parser.add_argument("--val-fraction", type=float, default=0.25)
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable cases")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    from nas import commands

    resume = args.pop("resume")
    out = args.pop("out")
    common = dict(device=args.pop("device"), resume=resume is not None, seed=args.pop("seed"),
                  skip_bad=args.pop("skip_bad"), progress=not args.pop("no_progress"))
    commands.retrain_genotype(args.pop("genotype"), args.pop("dataset"), args.pop("data_root"),
                              resume or out, val_fraction=args.pop("val_fraction"),
                              splits_file=args.pop("splits_file"), **common, **args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
