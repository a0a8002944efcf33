"""Does the search find anything, and does a latency budget give a network faster than U-Net?

On the bundled sample data (DSB2018 format), in one run on one machine:

1. an unconstrained search, a search with ``--latency-device cpu --budget-latency MS`` and one
   with ``--beta-regularization W``, all from the same seed and settings;
2. each derived network retrained with the same settings, and a cost-matched random genotype
   of the unconstrained one retrained beside it;
3. every network's CPU latency (batch 1, median) beside the plain 2D U-Net's on the same input,
   in the same process, so the ratio is what this machine gives.

Reports test DSC, params, FLOPs, latency and the latency ratio to U-Net, the parameter-free
share and the decision margins, and appends the table to BENCHMARKS.md.

    python -m bench.search_trust --epochs 16 --warmup 4 --retrain-epochs 30
"""
from __future__ import annotations

import argparse
import datetime
import tempfile
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from bench.common import add_publish_arguments, command_line, device_description, publish


def _latency(network: torch.nn.Module, shape: tuple[int, ...], repeats: int) -> float:
    from nas.complexity import measure_latency

    return measure_latency(network.eval(), shape, warmup=5, repeats=repeats)["median_ms"]


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m bench.search_trust", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--retrain-epochs", type=int, default=30)
    parser.add_argument("--budget-ratio", type=float, default=0.8,
                        help="latency budget as a share of the U-Net's CPU latency")
    parser.add_argument("--beta", type=float, default=5.0, help="--beta-regularization W")
    parser.add_argument("--repeats", type=int, default=30, help="timed forward passes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    add_publish_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    import models
    from nas.run import retrain_genotype, search
    from nas.run.random_baseline import random_baseline
    from nas.search import load_genotype_file
    from supernet import from_genotype

    root = Path(args.out or tempfile.mkdtemp(prefix="lwnas-trust-"))
    common = dict(device="cpu", seed=args.seed, progress=False, pictures=False,
                  epochs=args.epochs, warmup_epochs=args.warmup, channels=args.channels,
                  num_workers=0)
    size = 64  # the sample data's 2D size
    shape = (1, 3, size, size)
    unet = _latency(models.plain_unet(3, 1, 2), shape, args.repeats)
    budget = args.budget_ratio * unet
    searches = {
        "searched": dict(),
        f"searched, latency budget {budget:.1f} ms": dict(latency_device="cpu",
                                                          budget_latency=budget),
        f"searched, beta-regularisation {args.beta:g}": dict(beta_regularization=args.beta),
    }
    rows = []
    for index, (label, extra) in enumerate(searches.items()):
        run = root / f"search{index}"
        result = search("dsb2018", None, run, **common, **extra)
        last = result["history"][-1]
        rows.append({"network": label, "genotype": run / "genotype.json",
                     "parameter_free_share": last["parameter_free_share"],
                     "margin_median": last["margin_median"], "noise_margin": last["noise_margin"]})
    random_file = root / "random" / "genotype.json"
    random_baseline(root / "search0" / "genotype.json", args.seed, random_file)
    rows.append({"network": "random (cost-matched to searched)", "genotype": random_file})
    for index, row in enumerate(rows):
        result = retrain_genotype(row["genotype"], out=root / f"retrain{index}", device="cpu",
                                  seed=args.seed, epochs=args.retrain_epochs, num_workers=0,
                                  progress=False)
        genotype, _ = load_genotype_file(row["genotype"])
        row.update({"test_dsc": result["metrics"]["dsc"],
                    "params_M": result["metrics"]["params"] / 1e6,
                    "flops_G": result["metrics"]["flops"] / 1e9,
                    "latency_ms": _latency(from_genotype(genotype), shape, args.repeats)})
    rows.append({"network": "plain U-Net (models.plain_unet)", "latency_ms": unet,
                 "params_M": sum(p.numel() for p in models.plain_unet(3, 1, 2).parameters()) / 1e6})
    frame = pd.DataFrame(rows).drop(columns=["genotype"])
    frame["latency_vs_unet"] = frame["latency_ms"] / unet
    frame = frame.round(4)
    command = command_line("bench.search_trust", argv)
    section = "\n".join([
        f"## search_trust: searched vs random, latency budget, beta-regularisation "
        f"({datetime.date.today().isoformat()}, {device_description(torch.device('cpu'))})", "",
        f"Command: `{command}`  ",
        f"Sample data (DSB2018 format, 64x64), layout 2/3/2, {args.channels} channels, "
        f"{args.epochs} search epochs ({args.warmup} warm-up), {args.retrain_epochs} retrain "
        f"epochs, seed {args.seed}. Latency: CPU, batch 1, median of {args.repeats}, measured in "
        "this run beside the plain U-Net's (latency_vs_unet < 1: faster than U-Net).", "",
        frame.to_markdown(index=False), ""])
    publish(section, args.no_write, args.output)
    return frame


if __name__ == "__main__":
    main()
