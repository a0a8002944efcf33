"""The search loop's first step and steady step time with a preset's default settings.

``search.py --dataset dsb2018 --device cuda`` took 29 s for its first step on an H200 (cuDNN
autotuning, lazy CUDA start-up) and never finished its first step in 60 s under the old default
bf16 (issue 26). This runs the same loop (``nas.search.run_search``, the preset's settings:
fused cells, ``--precision auto``, cuDNN autotuning unless ``--deterministic``) on synthetic
images of the preset's shape, so it needs none of the data readers' packages (the GPU machine
lacks some), and times every step from the moments its batches are fetched (the loop reads each
loss on the host, so a step ends on the device before the next batch is fetched). Each variant
runs in its own process (its first step pays CUDA's start-up, as a user's does), within
``--variant-timeout`` seconds; rows are appended as they finish. The variants beside the
defaults are the search's speed options (``--cells batched``, ``--cuda-graph``: a CUDA graph
replays each step after 3 eager steps in the first epoch and 1 in each later one, so the
steady step is a replayed one) and the old questions (``--deterministic``, bf16).

    python -m bench.search_first_steps --device cuda --variant-timeout 90
    python -m bench.search_first_steps --device cpu --size 32 --steps 4 --no-write
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from bench.common import (
    MarkdownRows,
    add_publish_arguments,
    command_line,
    device_description,
    run_variant_process,
)

#: name -> SearchConfig overrides on top of the preset's (the first: its defaults)
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "--cells batched": {"cells": "batched"},
    "--cells per-edge": {"cells": "per-edge"},
    # eager warm-up steps (3 in the first epoch, 1 in later ones), then one graph per epoch
    "--cuda-graph (one graph an epoch)": {"cuda_graph": True},
    "--cells batched --cuda-graph": {"cells": "batched", "cuda_graph": True},
    "--deterministic (no cuDNN autotuning)": {"deterministic": True},
    "--precision bf16 (the old CUDA default)": {"precision": "bf16"},
}
COLUMNS = ["variant", "first_step_s", "second_step_s", "steady_step_ms", "steps", "precision",
           "note"]


class TimedImages(Dataset):
    """Random images and masks of one shape; records when each item is fetched."""

    def __init__(self, count: int, channels: int, size: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randn(count, channels, size, size, generator=generator)
        self.labels = (torch.rand(count, 1, size, size, generator=generator) > 0.7).float()
        self.in_channels, self.num_classes, self.spatial_dims = channels, 1, 2
        self.fetched: list[float] = []

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        self.fetched.append(time.perf_counter())
        return {"image": self.images[index], "label": self.labels[index], "case": f"c{index}"}


def run_variant(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from nas.search import SearchConfig, run_search
    from nas.train import DistributedContext, resolve_precision

    overrides = {"image_size": args.size, "epochs": args.epochs, "num_workers": 0,
                 "progress": False, **VARIANTS[name]}
    config = SearchConfig.from_preset(args.preset, **overrides)
    batch = config.batch_size
    steps_per_epoch = max(args.steps // args.epochs, 1)
    train = TimedImages(batch * steps_per_epoch, args.in_channels, args.size, seed=1)
    val = TimedImages(batch * 2, args.in_channels, args.size, seed=2)
    device = torch.device(args.device)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run_search(config, train, val, Path(out) / "search",
                   context=DistributedContext(device=device))
    # a step starts when its training batch is fetched; the first fetch of an epoch follows
    # the previous epoch's evaluation, so only steps inside an epoch are timed after the first
    starts = train.fetched[::batch]
    within = [later - earlier for index, (earlier, later) in enumerate(zip(starts, starts[1:]))
              if (index + 1) % steps_per_epoch]
    first = starts[1] - starts[0] if len(starts) > 1 else float("nan")
    precision = resolve_precision(config.precision, device)
    return {"variant": name, "first_step_s": first,
            "second_step_s": within[1] if len(within) > 1 else float("nan"),
            "steady_step_ms": 1e3 * statistics.median(within[2:] or within),
            "steps": len(starts), "precision": "fp32" if precision is None else str(precision),
            "start_to_first_batch_s": starts[0] - started, "note": ""}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.search_first_steps",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="dsb2018", help="the search preset (defaults)")
    parser.add_argument("--in-channels", type=int, default=3, help="3: DSB2018's RGB")
    parser.add_argument("--size", type=int, default=64, help="64: the sample data's images")
    # 12 an epoch: a CUDA graph variant's steady median is then a replayed step's
    parser.add_argument("--steps", type=int, default=24, help="steps in all (over --epochs)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None)
    parser.add_argument("--variant-timeout", type=float, default=None, metavar="S")
    add_publish_arguments(parser)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]] | None:
    args = parse_args(argv)
    if args.one:
        print(json.dumps(run_variant(args.one, args)))
        return None
    given = [a for a in (sys.argv[1:] if argv is None else list(argv)) if a != "--no-write"]
    command = command_line("bench.search_first_steps", given)
    device = torch.device(args.device)
    heading = "\n".join([
        f"## search_first_steps: the search loop's first and steady steps, {args.preset} "
        f"defaults ({datetime.date.today().isoformat()}, {device_description(device)})", "",
        f"Command: `{command}`  ",
        f"torch {torch.__version__}, Python {platform.python_version()}. nas.search.run_search "
        f"with the {args.preset} preset's settings on synthetic {args.in_channels} x {args.size}"
        f"^2 images, {args.steps} steps over {args.epochs} epochs, one process per variant "
        "(the first step pays CUDA's start-up and cuDNN's autotuning). A step: from one "
        "training batch's fetch to the next's; steady: the median after the first two."])
    table = MarkdownRows(heading, COLUMNS, args.no_write, args.output)
    for name in args.variants or list(VARIANTS):
        if VARIANTS[name].get("cuda_graph") and device.type != "cuda":
            table.add({"variant": name, "note": "needs CUDA: not run"})
            continue
        table.add(run_variant_process("bench.search_first_steps", name, given, args.variant_timeout))
    table.close()
    return table.rows


if __name__ == "__main__":
    main()
