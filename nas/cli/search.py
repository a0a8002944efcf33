"""Search a lightweight segmentation cell: ``python search.py --dataset chaos``; in 3D on
BraTS (``--dataset brats``) or any volume data set (``--dataset nnunet --spatial-dims 3``).

Unset flags keep the dataset's preset (seed 002's settings, ``nas/presets``). Runs under
``torchrun --nproc_per_node N search.py ...`` too.
"""
from __future__ import annotations

import argparse

from nas.presets import WINDOW_OVERLAP
from nas.search.config import CELLS

from .common import add_run_arguments, run_directory_of, sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from data import list_datasets

    parser.add_argument("--dataset", required=True, choices=list_datasets(),
                        help="a seed data set, or nnunet: any data set in the nnU-Net v2 raw or "
                             "Decathlon layout under --data-root")
    parser.add_argument("--data-root", help="real data set root (default: bundled sample data)")
    parser.add_argument("--out", help="run directory (default: runs/DATASET/search-TIME)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    parser.add_argument("--splits", dest="splits_file",
                        help="splits.json to use (default: cut from the cases by --seed and --val-fraction)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--channels", type=int, help="width of the first cells")
    parser.add_argument("--layout", help="encoder/middle/decoder cell counts, e.g. 2/3/2")
    parser.add_argument("--spatial-dims", type=int, choices=(2, 3),
                        help="nnunet volumes: search on 2D slices (default) or in 3D on crops "
                             "(the data option spatial_dims; BraTS is always 3D)")
    parser.add_argument("--image-size", type=int, help="2D side length (256 on real data)")
    parser.add_argument("--crop-size", type=sizes, metavar="N|NxNxN",
                        help="3D searches: the random crops (default 64; 32 on the sample data)")
    parser.add_argument("--overlap", type=float,
                        help="3D searches: sliding-window overlap of the whole-volume "
                             f"validation (default {WINDOW_OVERLAP})")
    parser.add_argument("--loss", help="search loss by name (nas.losses.list_losses(); default "
                                       "by target: bce_dice for masks and regions, ce_dice for "
                                       "classes)")
    parser.add_argument("--macro", choices=("default", "seed"),
                        help="macro settings to start from: default (16 channels doubling per "
                             "level) or seed (where derived networks land at seed 002's cost "
                             "point); flags override them")
    parser.add_argument("--width-growth", type=float,
                        help="cell widths per level: channels * growth ** level (default 2)")
    parser.add_argument("--lambda-params", type=float, help="weight of E[params] (in M)")
    parser.add_argument("--lambda-flops", type=float, help="weight of E[FLOPs] (in G)")
    costs = parser.add_argument_group("latency- and memory-aware costs, budgets")
    costs.add_argument("--latency-device", metavar="cpu|cuda[:N]",
                       help="measure every op's latency there (batch 1, cached on disk) for "
                            "E[latency], --budget-latency and the derived network's latency")
    costs.add_argument("--lambda-latency", type=float, help="weight of E[latency] (in ms)")
    costs.add_argument("--lambda-memory", type=float,
                       help="weight of E[activation memory] (in MB)")
    for kind, unit in (("params", "M"), ("flops", "G"), ("latency", "ms"), ("memory", "MB")):
        costs.add_argument(f"--budget-{kind}", type=float, metavar=unit,
                           help=f"hinge penalty when the derived network's expected {kind} "
                                f"exceed this ({unit}); zero below it")
    parser.add_argument("--beta-regularization", type=float, metavar="W",
                        help="beta-DARTS: W x epoch / epochs times the mean logsumexp of the "
                             "alphas (collapse resistance)")
    parser.add_argument("--order", type=int, choices=(1, 2), help="1: first order, 2: unrolled")
    parser.add_argument("--weight-lr", type=float)
    parser.add_argument("--arch-lr", type=float)
    parser.add_argument("--arch-travel", type=float, metavar="T",
                        help="raise the arch lr so that lr x architecture steps >= T "
                             "(default 2.6, seed 002's DSB2018 search; 0 keeps --arch-lr)")
    parser.add_argument("--space", choices=("unet", "darts"), help="U space or DARTS stack")
    parser.add_argument("--primitives", type=lambda text: tuple(text.split(",")),
                        metavar="OP,OP,...", help="candidate ops (default: the 8 search ops)")
    parser.add_argument("--partial-channels", type=int, metavar="K",
                        help="PC-DARTS: 1/K of the channels through the ops")
    parser.add_argument("--edge-normalization", action="store_true", default=None,
                        help="PC-DARTS edge weights")
    parser.add_argument("--alpha-sharing", choices=("type", "cell"),
                        help="alphas per cell type (default) or per cell")
    parser.add_argument("--max-parameter-free", type=int, metavar="N",
                        help="cap parameter-free ops per derived cell (collapse guard)")
    parser.add_argument("--early-stop-skip", type=int, metavar="N",
                        help="stop when a derived cell holds N skip connections (DARTS+)")
    parser.add_argument("--warmup-epochs", type=int, help="weight-only epochs before alphas move")
    parser.add_argument("--drop-path", type=float, metavar="P",
                        help="drop-path rate of the weight steps (the architecture steps run "
                             "every path; default: the preset's 0.3)")
    parser.add_argument("--shrink-below", type=float, metavar="W",
                        help="progressive shrinking: after each epoch past the warm-up, stop "
                             "computing ops whose weight on an edge fell below W")
    speed = parser.add_argument_group(
        "search step speed (the same search, faster or leaner; U space)")
    speed.add_argument("--cells", choices=CELLS,
                       help="search cell implementation, one function of the same alphas: fused "
                            "(default: the edges leaving a node together), batched (fewer "
                            "kernels still: the cell inputs' edges, norms and mixed sums "
                            "together), per-edge (one mixed op per edge)")
    speed.add_argument("--no-fused", dest="cells", action="store_const", const="per-edge",
                       help="the same as --cells per-edge")
    speed.add_argument("--checkpoint-cells", action="store_true", default=None,
                       help="keep only each cell's inputs for backward and run the cell again "
                            "there: a fraction of the activation memory for one more forward")
    speed.add_argument("--cuda-graph", action="store_true", default=None,
                       help="replay each step (architecture + weight update) as one CUDA graph: "
                            "one launch instead of thousands of small kernels (CUDA only, one "
                            "process; a few eager steps first, and one per epoch)")
    parser.add_argument("--val-fraction", type=float,
                        help="share of the training cases that update the alphas (default: the "
                             "data set's, data.get_preset(NAME).val_fraction)")
    add_run_arguments(parser, "supernet")
    parser.add_argument("--no-pictures", action="store_true", help="skip the PNG pictures")


def search_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``nas.run.search`` the flags say, but for the data set, its root,
    the run directory and ``resume`` (``lwnas run`` passes its own)."""
    options = {key: value for key, value in vars(args).items()
               if key not in ("debug", "parser", "run", "command", "dataset", "data_root", "out",
                              "resume")}
    data_options = dict(options.pop("data_options"))
    spatial_dims = options.pop("spatial_dims")
    if spatial_dims is not None:
        given = data_options.get("spatial_dims")
        if given is not None and int(given) != spatial_dims:
            args.parser.error(f"--spatial-dims {spatial_dims} and --option spatial_dims={given} disagree")
        data_options["spatial_dims"] = spatial_dims
    options["data_options"] = data_options or None
    options["progress"] = not options.pop("no_progress")
    options["pictures"] = not options.pop("no_pictures")
    return options


def run(args: argparse.Namespace) -> int:
    from nas.run import search

    search(args.dataset, args.data_root, run_directory_of(args), resume=args.resume is not None,
           **search_options(args))
    return 0
