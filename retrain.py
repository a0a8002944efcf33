"""Train a network from scratch, or segment BraTS cases with a trained 3D network.

    python retrain.py --genotype runs/.../genotype.json          # a searched 2D network
    python retrain.py --model mfsnet --dataset brats [--data-root DIR]
    python retrain.py --predict --checkpoint runs/.../best.pt --input DIR --output DIR [--tta]

Parses flags and calls :mod:`nas.commands` (genotypes) or :mod:`nas.brats_commands` (the 3D
networks); unset flags keep the preset (seed 002's retrain settings for genotypes, each
network's seed settings for --model, see nas/model_presets.py). Training runs under
``torchrun --nproc_per_node N retrain.py ...`` too.
"""
from __future__ import annotations

import argparse
import json
import sys


def _model_names() -> list[str]:
    import models

    return models.list_models()


def _key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, lists), else a string."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _sizes(text: str) -> tuple[int, ...] | int:
    """``128`` or ``160x192x128``."""
    try:
        sizes = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or NxNxN, got {text!r}") from None
    if len(sizes) not in (1, 3) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected N or NxNxN (positive), got {text!r}")
    return sizes[0] if len(sizes) == 1 else sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--genotype", help="genotype.json of a search")
    what.add_argument("--model", choices=_model_names(),
                      help="train a hand-designed 3D network on BraTS with its seed's "
                           "settings; with --predict: the network the checkpoint must hold")
    parser.add_argument("--predict", action="store_true",
                        help="segment the BraTS cases under --input with --checkpoint")
    parser.add_argument("--dataset", help="default: the genotype's dataset; brats for --model")
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
    three_d = parser.add_argument_group("3D networks (--model, --predict)")
    three_d.add_argument("--crop-size", type=_sizes, metavar="N|NxNxN",
                         help="training crop = sliding window (default: the model's preset; "
                              "32 on sample data); with --predict: the window")
    three_d.add_argument("--model-option", type=_key_value, action="append", default=[],
                         metavar="KEY=VALUE", dest="model_options",
                         help="network constructor argument, e.g. base_channels=16 (repeatable)")
    three_d.add_argument("--overlap", type=float, default=0.5,
                         help="sliding-window overlap (default 0.5)")
    three_d.add_argument("--et-threshold", type=int, default=400,
                         help="enhancing tumour with fewer voxels becomes label 1 (seed 000; "
                              "0 = off; default 400)")
    predict = parser.add_argument_group("prediction (--predict)")
    predict.add_argument("--checkpoint", help="best.pt or checkpoint.pt of retrain.py --model")
    predict.add_argument("--input", help="folder of BraTS cases (any release layout)")
    predict.add_argument("--output", help="folder for <case>.nii.gz and metrics_*.csv")
    predict.add_argument("--tta", action="store_true", help="average the 8 flips")
    return parser


def _predict(parser: argparse.ArgumentParser, args: dict) -> int:
    from nas import brats_commands

    missing = [f"--{name}" for name in ("checkpoint", "input", "output") if not args[name]]
    if missing:
        parser.error(f"--predict needs {', '.join(missing)}")
    if args["genotype"]:
        parser.error("--predict segments with a --model checkpoint, not a --genotype")
    try:
        report = brats_commands.predict(
            args["checkpoint"], args["input"], args["output"], device=args["device"],
            model=args["model"],
            tta=args["tta"], et_threshold=args["et_threshold"], roi_size=args["crop_size"],
            overlap=args["overlap"], precision=args["precision"] or "auto",
            progress=not args["no_progress"])
    except (ValueError, OSError) as error:  # bad checkpoint or input folder: one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    for failure in report.failures:
        print(f"failed: {failure}", file=sys.stderr)
    print(f"{len(report.predictions)} case(s) written to {args['output']}, "
          f"{len(report.failures)} failed", file=sys.stderr if report.failures else sys.stdout)
    return 1 if report.failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    if args.pop("predict"):
        return _predict(parser, args)
    if not (args["genotype"] or args["model"]):
        parser.error("one of --genotype, --model or --predict is required")
    resume = args.pop("resume")
    out = args.pop("out")
    common = dict(device=args.pop("device"), resume=resume is not None, seed=args.pop("seed"),
                  skip_bad=args.pop("skip_bad"), progress=not args.pop("no_progress"),
                  val_fraction=args.pop("val_fraction"), splits_file=args.pop("splits_file"))
    three_d = {name: args.pop(name) for name in ("crop_size", "model_options", "overlap",
                                                 "et_threshold", "checkpoint", "input",
                                                 "output", "tta")}
    model = args.pop("model")
    if model is not None:
        from nas import brats_commands

        brats_commands.retrain_model(
            model, args.pop("dataset") or "brats", args.pop("data_root"), resume or out,
            crop_size=three_d["crop_size"], model_kwargs=dict(three_d["model_options"]) or None,
            overlap=three_d["overlap"], et_threshold=three_d["et_threshold"], **common, **args)
        return 0
    flags = {"crop_size": "--crop-size", "model_options": "--model-option",
             "checkpoint": "--checkpoint", "input": "--input", "output": "--output", "tta": "--tta"}
    given = [flag for name, flag in flags.items() if three_d[name]]
    if given:
        parser.error(f"{', '.join(given)} applies to --model / --predict, not --genotype")
    from nas import commands

    commands.retrain_genotype(args.pop("genotype"), args.pop("dataset"), args.pop("data_root"),
                              resume or out, **common, **args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
