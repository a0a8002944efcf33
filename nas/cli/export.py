"""Export a trained network for use outside lwnas:

    lwnas export --checkpoint runs/.../best.pt --format onnx --output net.onnx
    lwnas export --checkpoint runs/.../best.pt --format torchscript --output net.pt
    lwnas export --checkpoint runs/cv/searched --format onnx --output ensemble.onnx [--folds 0 2] [--each-fold]

Writes the network (input ``image`` N x C x spatial, already preprocessed; output ``logits``;
dynamic batch, and spatial size where the network allows) and ``FILE.json`` beside it: the
preprocessing, the label map (activation, how outputs become labels), input size and channels,
the genotype, and the check made after export (the file run against the network). A folds run's
directory exports as one module holding its folds, returning the logits of the mean of their
probabilities (the sidecar's ``ensemble`` says so), or with --each-fold as one file per fold.
ONNX needs the onnx package (``pip install 'lwnas[export]'``; onnxruntime for the check).
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nas.run.export import FORMATS

    parser.add_argument("--checkpoint", required=True,
                        help="best.pt or checkpoint.pt of a retrain run, or a folds run's directory "
                             "(retrain.py --folds): one module holding its folds' ensemble")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="format")
    parser.add_argument("--output", required=True, help="file to write (FILE.json is written beside it)")
    parser.add_argument("--folds", type=int, nargs="+", metavar="I",
                        help="with a folds run's directory: the folds to export (default: all)")
    parser.add_argument("--each-fold", action="store_true",
                        help="with a folds run's directory: one file per fold (FILE_fold<i>.onnx), not one "
                             "ensemble module")


def run(args: argparse.Namespace) -> int:
    from nas.run import export_checkpoint
    from nas.run.export import export_each_fold

    if args.each_fold:
        reports = export_each_fold(args.checkpoint, args.format, args.output, args.folds)
    else:
        reports = [export_checkpoint(args.checkpoint, args.format, args.output, args.folds)]
    for report in reports:
        check = ("unchecked (onnxruntime not installed)" if report.max_abs_difference is None
                 else f"max abs difference to the network {report.max_abs_difference:.2e}")
        spatial = "dynamic batch and spatial size" if report.dynamic_spatial else "dynamic batch, fixed spatial size"
        print(f"{report.path} ({args.format}, {spatial}; {check}); sidecar {report.sidecar}")
    return 0


__all__ = ["add_arguments", "run"]
