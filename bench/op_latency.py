"""The eight search ops' CPU (or GPU) latency at batch 1 beside their params and FLOPs, as
ratios to sep_conv_3x3 measured in the same run: how far FLOPs predict what an op costs.

    python -m bench.op_latency --size 64 --channels 16 --repeats 50
"""
from __future__ import annotations

import argparse
import datetime
from typing import Sequence

import pandas as pd
import torch

from bench.common import add_publish_arguments, command_line, device_description, publish


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m bench.op_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--spatial-dims", type=int, default=2, choices=(2, 3))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    add_publish_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from nas.complexity.paper_tables import latency_table

    frame = latency_table(args.size, args.channels, args.spatial_dims, args.device, args.repeats)
    command = command_line("bench.op_latency", argv)
    section = "\n".join([
        f"## op_latency: the search ops' latency against their FLOPs "
        f"({datetime.date.today().isoformat()}, {device_description(torch.device(args.device))})",
        "", f"Command: `{command}`  ",
        f"Input 1 x {args.channels} x {args.size}^{args.spatial_dims}, forward only, median of "
        f"{args.repeats} after 10 warm-up; ratios to sep_conv_3x3 of the same run. Memory: the "
        "activation bytes a training forward saves.", "", frame.to_markdown(index=False), ""])
    publish(section, args.no_write, args.output)
    return frame


if __name__ == "__main__":
    main()
