"""Segment new images or volumes with a trained checkpoint:

    lwnas predict --checkpoint runs/.../best.pt --input PATH --output DIR [--tta] [--probabilities]
    lwnas predict --checkpoint runs/cv/searched --input PATH --output DIR [--folds 0 2]   # fold ensemble

2D networks (genotypes, the unet2d baseline) take what their data set's readers read: PNG/TIFF
images or a DSB2018 tree (dsb2018), a DICOM series folder (chaos), .mhd/.mha/.nii.gz/.nrrd
volumes predicted slice by slice (promise12), the data set's own files such as imagesTs/
(nnunet). 3D BraTS networks take case folders. A folds run's directory (retrain.py --folds)
predicts with the mean of its folds' probabilities (with --tta, each fold's flip average first).
Writes one segmentation per case in the input's geometry, and a metrics table where labels lie
beside the inputs. A case that cannot be read is
reported and the rest are predicted (exit 1); a bad checkpoint or input stops before anything is
written (exit 2).
"""
from __future__ import annotations

import argparse
import sys

from nas.presets import WINDOW_OVERLAP
from nas.train.runtime import AUTO_PRECISION_RULE

from .common import USAGE_ERROR, sizes


def add_prediction_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The flags of a prediction (shared with ``retrain.py --predict``)."""
    parser.add_argument("--checkpoint", required=required,
                        help="best.pt or checkpoint.pt of a retrain run, or a folds run's directory "
                             "(retrain.py --folds): the ensemble of its folds")
    parser.add_argument("--input", required=required, help="folder of cases to segment")
    parser.add_argument("--output", required=required,
                        help="folder for the segmentations and metrics_*.csv")
    parser.add_argument("--tta", action="store_true", help="average the flips (4 in 2D, 8 in 3D)")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write the sigmoid/softmax maps (2D networks)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_prediction_arguments(parser)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int,
                        help="slices per forward (2D, default 8) or windows per forward (3D, default 1)")
    parser.add_argument("--model", help="refuse a checkpoint holding another network")
    parser.add_argument("--folds", type=int, nargs="+", metavar="I", dest="ensemble_folds",
                        help="with a folds run's directory: the folds to ensemble (default: all)")
    parser.add_argument("--crop-size", type=sizes, metavar="N|NxNxN",
                        help="sliding window (default: the training crop)")
    parser.add_argument("--overlap", type=float,
                        help=f"sliding-window overlap (default {WINDOW_OVERLAP})")
    add_et_threshold(parser)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                        help=AUTO_PRECISION_RULE)
    parser.add_argument("--no-progress", action="store_true", help="no progress lines")


def add_et_threshold(parser: argparse.ArgumentParser) -> None:
    from data import ET_THRESHOLD

    parser.add_argument("--et-threshold", type=int, default=ET_THRESHOLD,
                        help="enhancing tumour with fewer voxels becomes label 1 (seed 000; "
                             f"0 = off; default {ET_THRESHOLD})")


def run(args: argparse.Namespace) -> int:
    from nas.run import predict_checkpoint

    report = predict_checkpoint(args.checkpoint, args.input, args.output, device=args.device,
                                model=args.model, tta=args.tta, probabilities=args.probabilities,
                                batch_size=getattr(args, "batch_size", None),
                                et_threshold=args.et_threshold, roi_size=args.crop_size,
                                overlap=args.overlap, precision=args.precision or "auto",
                                progress=not args.no_progress, folds=getattr(args, "ensemble_folds", None))
    for failure in report.failures:
        print(f"failed: {failure}", file=sys.stderr)
    for problem in report.unscored:
        print(f"not scored: {problem}", file=sys.stderr)
    trouble = report.failures or report.unscored
    print(f"{len(report.predictions)} case(s) written to {args.output}, "
          f"{len(report.failures)} failed"
          + (f", {len(report.unscored)} not scored" if report.unscored else ""),
          file=sys.stderr if trouble else sys.stdout)
    return 1 if trouble else 0


__all__ = ["USAGE_ERROR", "add_arguments", "add_prediction_arguments", "run"]
