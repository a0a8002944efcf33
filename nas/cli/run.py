"""From a data set to a deployed model in one command:

    lwnas run --dataset NAME [--data-root DIR] --out RUN

check -> fingerprint and plan -> search (--search-seeds N; with several, the genotype of the best
validation DSC) -> cost-matched random genotype -> K-fold retraining (--folds K) of the searched,
the random and the hand-designed network (2D: the U-Net; 3D: the 3D U-Net) on the same folds ->
cross-validated report with pictures -> export of the searched network's fold ensemble.

Without --data-root: the bundled sample data. Every stage writes into RUN/STAGE/ and is skipped
when done with the same settings: the same command again resumes a crashed or killed run at the
stage and epoch it reached; other settings are refused, naming what differs. --stages
search,retrain runs a part. Any flag of a stage passes through with its prefix:
--search-epochs 40, --retrain-epochs 40, --retrain-lr 0.01, --random-tolerance 0.1,
--export-format torchscript (``lwnas search --help`` ... list them); --image-size, --crop-size,
--workers, --precision and the other run flags apply to the search and the retraining alike.
"""
from __future__ import annotations

import argparse
import inspect
from typing import Any

from .common import add_run_arguments, sizes

#: The flags of each stage's command that pass through with the stage's prefix (the others,
#: such as the data set, the seeds, the splits and the run directories, are set by lwnas run).
PASSED_ON = {
    "search": None,  # every flag of lwnas search but those in OWNED
    "retrain": ("epochs", "batch_size", "lr", "weight_decay", "drop_path", "loss", "image_size",
                "precision", "channels_last", "compile", "deterministic", "num_workers", "tensorboard",
                "crop_size", "overlap", "et_threshold", "model_options"),
    "random": ("tolerance", "max_tries"),
    "export": ("format",),
}
#: What lwnas run decides for every stage (its own flags say it once).
OWNED = ("dataset", "data_root", "out", "resume", "seed", "splits_file", "val_fraction", "device",
         "skip_bad", "no_progress", "data_options", "spatial_dims", "help", "debug")
#: Flags of lwnas run that reach both the search and the retraining.
SHARED = ("precision", "channels_last", "compile", "deterministic", "num_workers", "tensorboard",
          "image_size", "crop_size")


def _stage_parser(stage: str) -> argparse.ArgumentParser:
    from . import export, random_genotype, retrain, search

    module = {"search": search, "retrain": retrain, "random": random_genotype, "export": export}[stage]
    parser = argparse.ArgumentParser(prog=f"lwnas {stage}", add_help=False)
    module.add_arguments(parser)
    return parser


def _passed_on(stage: str, parser: argparse.ArgumentParser) -> list[argparse.Action]:
    wanted = PASSED_ON[stage]
    return [action for action in parser._actions if action.option_strings
            and (action.dest in wanted if wanted is not None else action.dest not in OWNED)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from data import list_datasets
    from nas.presets import RUN_PRESET
    from nas.run.pipeline import STAGE_NAMES

    parser.allow_abbrev = False  # --search-seed is lwnas search's --seed, not --search-seeds
    parser.add_argument("--dataset", required=True, choices=list_datasets(),
                        help="a seed data set, or nnunet: any data set in the nnU-Net v2 raw or "
                             "Decathlon layout under --data-root")
    parser.add_argument("--data-root", help="the data set's root (default: the bundled sample data)")
    parser.add_argument("--out", required=True, help="the run directory (the same one continues a run)")
    parser.add_argument("--stages", type=lambda text: [part for part in text.split(",") if part],
                        metavar="STAGE,...", help=f"run these only, of {','.join(STAGE_NAMES)} (default: all)")
    parser.add_argument("--folds", type=int, help=f"cross-validation folds (default {RUN_PRESET.folds})")
    parser.add_argument("--search-seeds", type=int, metavar="N",
                        help=f"searches, seeds --seed.. --seed+N-1 (default {RUN_PRESET.search_seeds}); "
                             "the genotype of the best validation DSC is retrained")
    parser.add_argument("--random-seed", type=int,
                        help=f"the draw of the cost-matched random genotype (default {RUN_PRESET.random_seed})")
    parser.add_argument("--val-fraction", type=float,
                        help="share of the training cases that validate (the search's architecture "
                             "steps, the retraining's best epoch; never tested); default: the data set's")
    parser.add_argument("--image-size", type=int, help="2D side of the search and the retraining "
                                                       "(--search-image-size, --retrain-image-size: one)")
    parser.add_argument("--crop-size", type=sizes, metavar="N|NxNxN",
                        help="3D crop of the search and the retraining (--search-crop-size, "
                             "--retrain-crop-size: one)")
    add_run_arguments(parser, "network")
    taken = {option for action in parser._actions for option in action.option_strings}
    for stage in PASSED_ON:
        group = parser.add_argument_group(f"{stage} flags (lwnas {stage}'s, prefixed)")
        for action in _passed_on(stage, _stage_parser(stage)):
            flags = [f"--{stage}-{option[2:]}" for option in action.option_strings
                     if option.startswith("--") and f"--{stage}-{option[2:]}" not in taken]
            if flags:
                group.add_argument(*flags, **_copy(action), dest=f"{stage}:{action.dest}")


def _copy(action: argparse.Action) -> dict[str, Any]:
    """The keyword arguments that rebuild ``action`` under another name, defaults kept (None or
    the command's own, so an unset flag stays unset)."""
    accepted = inspect.signature(type(action)).parameters
    values = {name: getattr(action, name) for name in ("nargs", "const", "default", "type", "choices",
                                                       "help", "metavar") if name in accepted}
    values["required"] = False
    if "metavar" in accepted and action.metavar is None and action.nargs != 0:
        values["metavar"] = action.dest.upper()  # not the prefixed dest
    return {"action": type(action), **values}


def _given(stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of the stage's command its prefixed flags (and the shared ones) set."""
    from .retrain import training_options, volume_options
    from .search import search_options

    parser = _stage_parser(stage)
    required = {"search": ["--dataset", args.dataset], "retrain": [],
                "random": ["--like", "-", "--seed", "0", "--out", "-"],
                "export": ["--checkpoint", "-", "--format", "onnx", "--output", "-"]}[stage]
    bare = parser.parse_args(required)
    bare.parser = args.parser
    given = argparse.Namespace(**vars(bare))
    if stage in ("search", "retrain"):
        for name in SHARED:
            setattr(given, name, getattr(args, name))
    for key, value in vars(args).items():
        if key.startswith(f"{stage}:") and value != args.parser.get_default(key):  # given
            setattr(given, key.split(":", 1)[1], value)
    if stage == "search":
        convert = search_options
    elif stage == "retrain":
        def convert(namespace):
            return {**training_options(namespace), **volume_options(namespace)}
    elif stage == "random":
        def convert(namespace):
            return {"tolerance": namespace.tolerance, "max_tries": namespace.max_tries}
    else:
        def convert(namespace):
            return {"fmt": namespace.format}
    before, after = convert(bare), convert(given)
    # the run-level settings (device, seed, ...) are no stage's flags: equal in both
    return {key: value for key, value in after.items() if value != before.get(key)}


def run(args: argparse.Namespace) -> int:
    from nas.run import COMMANDS, run_pipeline

    run_pipeline(args.dataset, args.data_root, args.out, commands=COMMANDS, stages_to_run=args.stages,
                 seed=args.seed, folds=args.folds, search_seeds=args.search_seeds,
                 random_seed=args.random_seed, val_fraction=args.val_fraction, skip_bad=args.skip_bad,
                 device=args.device, progress=not args.no_progress,
                 data_options=dict(args.data_options) or None,
                 **{stage: _given(stage, args) for stage in PASSED_ON})
    return 0


__all__ = ["add_arguments", "run"]
