"""Train a network from scratch, or segment new cases with a trained network.

    python retrain.py --genotype runs/.../genotype.json          # a searched 2D or 3D network
    python retrain.py --genotype runs/.../genotype.json --folds 5 --out runs/cv/searched   # 5-fold CV
    python retrain.py --model unet2d --dataset dsb2018 --splits runs/cv/searched/splits.json  # its folds
    python retrain.py --model unet2d --dataset dsb2018 [--splits runs/.../splits.json]  # its baseline
    python retrain.py --model mfsnet --dataset brats [--data-root DIR]
    python retrain.py --predict --checkpoint runs/.../best.pt --input PATH --output DIR [--tta]

Unset flags keep the preset (seed 002's retrain settings for genotypes and the 2D baseline, each
3D network's seed settings for --model, see nas/presets). ``--predict`` is ``lwnas predict``.
Training runs under ``torchrun --nproc_per_node N retrain.py ...`` too.
"""
from __future__ import annotations

import argparse

from nas.presets import BASELINE_MODELS_2D, WINDOW_OVERLAP

from .common import add_run_arguments, key_value, run_directory_of, sizes
from .predict import add_et_threshold, add_prediction_arguments

#: flags of --model / --predict that a --genotype run does not take (--crop-size, --overlap and
#: --et-threshold apply to 3D genotypes)
_THREE_D_FLAGS = {"model_options": "--model-option", "checkpoint": "--checkpoint",
                  "input": "--input", "output": "--output", "tta": "--tta",
                  "probabilities": "--probabilities", "overwrite": "--overwrite"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import models

    what = parser.add_mutually_exclusive_group()
    what.add_argument("--genotype", help="genotype.json of a search")
    what.add_argument("--model", choices=[*BASELINE_MODELS_2D, *models.list_models()],
                      help="unet2d: the 2D U-Net baseline with the genotype retrain settings "
                           "(needs --dataset); else a hand-designed 3D network on BraTS with its "
                           "seed's settings; with --predict: the network the checkpoint must hold")
    parser.add_argument("--predict", action="store_true",
                        help="segment the cases under --input with --checkpoint (lwnas predict)")
    parser.add_argument("--dataset", help="default: the genotype's dataset; brats for a 3D --model")
    parser.add_argument("--data-root", help="real data set root (default: bundled sample data)")
    parser.add_argument("--out", help="run directory (default: runs/DATASET/retrain-TIME)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    parser.add_argument("--splits", dest="splits_file",
                        help="splits.json to use (default: the one beside the genotype); one with folds "
                             "(another network's folds run) trains on those folds")
    parser.add_argument("--folds", type=int, metavar="K",
                        help="K-fold cross-validation: K networks on a case-level K-fold split into "
                             "OUT/fold_i/, cv_metrics.json at OUT (resume with --resume OUT)")
    parser.add_argument("--fold", type=int, metavar="I",
                        help="train fold I only (0..K-1) of a folds run (with --folds K, or --splits / "
                             "--out of one); folds may run as separate jobs into one --out")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--drop-path", type=float)
    parser.add_argument("--loss", help="loss name (see nas.losses.list_losses())")
    parser.add_argument("--image-size", type=int, help="2D side length")
    parser.add_argument("--val-fraction", type=float,
                        help="share of the training cases that validate (default: the data set's, "
                             "data.get_preset(NAME).val_fraction)")
    add_run_arguments(parser, "network")
    three_d = parser.add_argument_group("3D networks (--model, 3D --genotype, --predict)")
    three_d.add_argument("--crop-size", type=sizes, metavar="N|NxNxN",
                         help="training crop = sliding window (default: the model's preset; "
                              "32 on sample data); with --predict: the window")
    three_d.add_argument("--model-option", type=key_value, action="append", default=[],
                         metavar="KEY=VALUE", dest="model_options",
                         help="network constructor argument, e.g. base_channels=16 (repeatable)")
    three_d.add_argument("--overlap", type=float,
                         help=f"sliding-window overlap (default {WINDOW_OVERLAP})")
    add_et_threshold(three_d)
    add_prediction_arguments(parser.add_argument_group("prediction (--predict)"), required=False)


def run(args: argparse.Namespace) -> int:
    parser = args.parser
    if args.predict:
        return _predict(parser, args)
    if not (args.genotype or args.model):
        parser.error("one of --genotype, --model or --predict is required")
    common = dict(resume=args.resume is not None, splits_file=args.splits_file, folds=args.folds,
                  fold=args.fold)
    training = training_options(args)
    out = run_directory_of(args)
    if args.model in BASELINE_MODELS_2D:
        given = [flag for name, flag in {**_THREE_D_FLAGS, "crop_size": "--crop-size"}.items()
                 if getattr(args, name)]
        if given:
            parser.error(f"{', '.join(given)} applies to 3D --model / --predict, not --model {args.model}")
        from nas.run import retrain_baseline

        retrain_baseline(args.model, args.dataset, args.data_root, out, **common, **training)
        return 0
    if args.model is not None:
        from nas.run import retrain_model

        retrain_model(args.model, args.dataset or "brats", args.data_root, out, **volume_options(args), **common,
                      **training)
        return 0
    given = [flag for name, flag in _THREE_D_FLAGS.items() if getattr(args, name)]
    if given:
        parser.error(f"{', '.join(given)} applies to --model / --predict, not --genotype")
    from nas.run import retrain_genotype

    retrain_genotype(args.genotype, args.dataset, args.data_root, out, crop_size=args.crop_size,
                     overlap=args.overlap, et_threshold=args.et_threshold, **common, **training)
    return 0


def training_options(args: argparse.Namespace) -> dict:
    """The keyword arguments every retrain function (``nas.run.retrain_genotype``,
    ``retrain_baseline``, ``retrain_model``) takes from the flags, but for what is trained, on
    which data, where, and from which splits (``lwnas run`` passes its own)."""
    return dict(device=args.device, seed=args.seed, skip_bad=args.skip_bad,
                progress=not args.no_progress, val_fraction=args.val_fraction,
                data_options=dict(args.data_options) or None, tensorboard=args.tensorboard,
                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                weight_decay=args.weight_decay, drop_path=args.drop_path, loss=args.loss,
                image_size=args.image_size, precision=args.precision,
                channels_last=args.channels_last, compile=args.compile,
                deterministic=args.deterministic, num_workers=args.num_workers)


def volume_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``nas.run.retrain_model`` only the 3D flags set."""
    return dict(crop_size=args.crop_size, model_kwargs=dict(args.model_options) or None,
                overlap=args.overlap, et_threshold=args.et_threshold)


def _predict(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from . import predict

    missing = [f"--{name}" for name in ("checkpoint", "input", "output")
               if not getattr(args, name)]
    if missing:
        parser.error(f"--predict needs {', '.join(missing)}")
    if args.genotype:
        parser.error("--predict segments with a trained checkpoint (--checkpoint), not a --genotype")
    return predict.run(args)
