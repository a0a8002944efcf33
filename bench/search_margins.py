"""Do a search's decisions clear the noise? The demo's search over several seeds.

For each variant and seed, a search on the bundled sample data (DSB2018 format) with the
demo's settings (``Makefile``: SEARCH_FLAGS), reporting the derived genotype's median decision
margin beside the noise margin (``nas.search.derive.noise_margin``: what architecture gradients
of random sign reach in as many Adam steps, about the 95th percentile of such runs) and, for
the alphas' gradients of every architecture step, their per-step signal-to-noise (per alpha,
|mean| / standard deviation over the steps; the median over alphas). Variants:

- ``paths-dropped``: the architecture steps' forwards drop paths like the weight steps' (what
  the search did before ``Architect.step`` ran them through ``without_drop_path``);
- ``preset``: the weight steps drop paths at the preset's 0.3, the architecture steps run all;
- ``demo``: no drop-path anywhere (the demo's ``--drop-path 0``).

    python -m bench.search_margins --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import tempfile
from pathlib import Path
from typing import Iterator, Sequence
from unittest import mock

import pandas as pd
import torch

from bench.common import add_publish_arguments, command_line, device_description, publish

VARIANTS = ("paths-dropped", "preset", "demo")


@contextlib.contextmanager
def _recorded_gradients(variant: str) -> Iterator[list[torch.Tensor]]:
    """Record the alphas' gradient of every architecture step; ``paths-dropped`` also lets
    the step's forwards drop paths."""
    from nas.search.architect import Architect
    from supernet.architecture import SupernetMixin

    recorded: list[torch.Tensor] = []
    step = Architect._step

    def recording_step(self, *args, **kwargs):
        loss = step(self, *args, **kwargs)
        recorded.append(torch.cat([p.grad.detach().flatten().clone() for p in self.arch_params]))
        return loss

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(Architect, "_step", recording_step))
        if variant == "paths-dropped":
            stack.enter_context(mock.patch.object(
                SupernetMixin, "without_drop_path", lambda self: contextlib.nullcontext()))
        yield recorded


def _signal_to_noise(gradients: list[torch.Tensor]) -> float:
    if len(gradients) < 2:
        return float("nan")
    stacked = torch.stack(gradients)
    ratio = stacked.mean(0).abs() / (stacked.std(0) + 1e-20)
    return float(ratio.median())


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m bench.search_margins", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--layout", help="default: the preset's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    add_publish_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from nas.run import search

    root = Path(args.out or tempfile.mkdtemp(prefix="lwnas-margins-"))
    common = dict(device="cpu", progress=False, pictures=False, epochs=args.epochs,
                  warmup_epochs=args.warmup, image_size=args.image_size,
                  channels=args.channels, num_workers=0,
                  **({"layout": args.layout} if args.layout else {}))
    rows = []
    for variant in args.variants:
        drop_path = {"demo": 0.0}.get(variant)  # None: the preset's
        for seed in args.seeds:
            with _recorded_gradients(variant) as gradients:
                result = search("dsb2018", None, root / f"{variant}-{seed}", seed=seed,
                                drop_path=drop_path, **common)
            last = result["history"][-1]
            rows.append({"variant": variant, "seed": seed,
                         "margin_median": last["margin_median"],
                         "noise_margin": last["noise_margin"],
                         "margin_vs_noise": last["margin_median"] / last["noise_margin"],
                         "gradient_snr": _signal_to_noise(gradients),
                         "val_dsc": last.get("val_dsc", float("nan"))})
    frame = pd.DataFrame(rows)
    summary = (frame.groupby("variant", sort=False)["margin_vs_noise"]
               .agg(lambda values: f"{min(values):.2f}-{max(values):.2f} (median "
                                   f"{statistics.median(values):.2f})"))
    command = command_line("bench.search_margins", argv)
    section = "\n".join([
        f"## search_margins: the demo's search decisions against noise "
        f"({datetime.date.today().isoformat()}, {device_description(torch.device('cpu'))})", "",
        f"Command: `{command}`  ",
        f"Sample data (DSB2018 format) at {args.image_size}x{args.image_size}, "
        f"{args.channels} channels, {args.epochs} search epochs ({args.warmup} weight-only), "
        f"seeds {', '.join(map(str, args.seeds))}. margin_vs_noise > 1: the median decision "
        "margin is above what random-sign gradients reach in as many steps; gradient_snr: "
        "per alpha |mean| / std of its gradient over the architecture steps (median).", "",
        frame.round(4).to_markdown(index=False), "",
        "margin_vs_noise per variant: " + "; ".join(f"{variant} {text}"
                                                    for variant, text in summary.items()), ""])
    publish(section, args.no_write, args.output)
    return frame


if __name__ == "__main__":
    main()
