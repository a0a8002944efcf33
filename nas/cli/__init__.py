"""The ``lwnas`` command: one subcommand per job, each the same flags as its stand-alone
entry point (``python search.py``, ``python retrain.py``, ``python -m data.check`` ...).

    lwnas run --dataset dsb2018 --out RUN      # the whole way: check, plan, search, random,
                                               # K-fold retrain, report, export
    lwnas search --dataset dsb2018
    lwnas retrain --genotype RUN/genotype.json
    lwnas predict --checkpoint RUN/best.pt --input PATH --output DIR
    lwnas export --checkpoint RUN/best.pt --format onnx --output net.onnx
    lwnas report RUN          lwnas visualize RUN          lwnas complexity ops
    lwnas check --dataset chaos --data-root DIR          lwnas sample --dataset brats --out DIR

The parsers only parse; each subcommand's ``run`` calls ``nas.run`` (or ``data``), where the
work is done and tested.
"""
from __future__ import annotations

import argparse
import importlib
from typing import Sequence

from .common import add_debug_flag, guarded

#: subcommand -> (module under nas.cli, one-line help)
SUBCOMMANDS = {
    "run": ("run", "the whole way: check, plan, search, random genotype, K-fold retraining of the "
                   "searched, random and U-Net, report, export (resumable)"),
    "search": ("search", "search a genotype (the supernet's cells) for a 2D data set"),
    "retrain": ("retrain", "train a genotype or a hand-designed 3D network from scratch"),
    "predict": ("predict", "segment new images or volumes with a trained checkpoint"),
    "export": ("export", "write a trained network as ONNX or TorchScript with a JSON sidecar"),
    "random-genotype": ("random_genotype", "a random genotype of the same cost (the baseline)"),
    "report": ("report", "complexity of a derived network beside a plain U-Net"),
    "visualize": ("visualize", "draw cells, macro layout, alpha heat map and curves of a run"),
    "complexity": ("complexity", "the papers' complexity tables (ops, 3D networks)"),
    "check": ("check", "verify a data set: every problem, one line each"),
    "sample": ("sample", "write a sample data set in the real on-disk format"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lwnas", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        sub = commands.add_parser(name, help=help_text, description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        add_debug_flag(sub)
        sub.set_defaults(run=module.run, parser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(args.run, args)
