"""Per-op latency, two ways.

Without ``--precision``: the eight search ops' CPU (or GPU) latency at batch 1 beside their
params and FLOPs, as ratios to sep_conv_3x3 measured in the same run: how far FLOPs predict
what an op costs.

    python -m bench.op_latency --size 64 --channels 16 --repeats 50

With ``--precision fp32 bf16`` (issue 26: the 2D search in bf16 was far slower than in fp32 on
an H200): forward + backward of every search op, every fused op (all the edges leaving one
state), the fused source and batched group (all ops of a state / of the cell's two inputs) and
the single kernels they are made of (depthwise, dilated depthwise, grouped and dense 1x1 convs,
batch norm), at the search step's shapes (batch 2, 16 channels, 256x256; 4 edges per state),
side by side per precision: the first call (cuDNN autotuning when ``cudnn.benchmark`` is on),
the median after warm-up, the ratio to the first precision, and what each precision dispatches
(kernels; dtype casts, i.e. the ``_to_copy`` autocast inserts). On CUDA every entry runs with
``cudnn.benchmark`` on and off. Rows are appended as they are measured; ``--variant-timeout``
bounds each entry (checked between calls).

    python -m bench.op_latency --device cuda --precision fp32 bf16 --variant-timeout 20
    python -m bench.op_latency --device cpu --precision fp32 bf16 --size 64 --repeats 3
"""
from __future__ import annotations

import argparse
import datetime
import platform
import time
from typing import Any, Callable, Sequence

import pandas as pd
import torch
from torch import nn

import ops
from bench.common import (
    Deadline,
    MarkdownRows,
    TimeLimitExceeded,
    add_publish_arguments,
    command_line,
    device_description,
    median_seconds,
    publish,
)
from bench.dispatch import count_ops
from supernet.batched_group import BatchedGroup
from supernet.fused import FusedSource
from supernet.fused_ops import FUSED_OPS, SharedInputs
from supernet.mixed_op import SEARCH_NORM

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

#: entry -> builder(channels, edges, spatial_dims) -> (module, forward(module, x), input channels)
Entry = Callable[[int, int, int], tuple[nn.Module, Callable[[nn.Module, torch.Tensor], Any], int]]


def _search_op(name: str) -> Entry:
    def build(c: int, edges: int, dims: int):
        return ops.build(name, c, 1, dims, SEARCH_NORM, "relu"), lambda m, x: m(x), c
    return build


def _fused_op(name: str) -> Entry:
    def build(c: int, edges: int, dims: int):
        cls, kernel, dilation = FUSED_OPS[name]
        module = cls(c, edges, dims, kernel, dilation, SEARCH_NORM, "relu")
        act = ops.act_layer("relu")
        return module, lambda m, x: m(SharedInputs(x, edges, act)), c
    return build


def _fused_source(c: int, edges: int, dims: int):
    module = FusedSource(c, edges, dims, ops.SEARCH_OPS, 1, SEARCH_NORM, "relu")
    module.register_buffer("alphas", torch.randn(edges, len(ops.SEARCH_OPS)))
    active = [i for i, name in enumerate(ops.SEARCH_OPS) if name != "none"]

    def forward(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return m(x, m.alphas.softmax(-1), active)
    return module, forward, c


def _batched_group(c: int, edges: int, dims: int):
    module = BatchedGroup(c, 2, edges, dims, ops.SEARCH_OPS)
    module.register_buffer("alphas", torch.randn(2 * edges, len(ops.SEARCH_OPS)))
    active = tuple(i for i, name in enumerate(ops.SEARCH_OPS) if name != "none")

    def forward(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return m([x, x * 0.5], m.alphas.softmax(-1), None, active)
    return module, forward, c


def _kernel(make: Callable[[int, int, int], nn.Module], wide: bool) -> Entry:
    """One layer, on C channels or (``wide``) on the edges x C channels of a fused op."""
    def build(c: int, edges: int, dims: int):
        width = c * edges if wide else c
        return make(width, edges, dims), lambda m, x: m(x), width
    return build


def entries(primitives: Sequence[str] = ops.SEARCH_OPS) -> dict[str, Entry]:
    table: dict[str, Entry] = {}
    for name in primitives:
        if name != "none":
            table[f"op {name}"] = _search_op(name)
    for name in primitives:
        if name in FUSED_OPS:
            table[f"fused {name} (E edges)"] = _fused_op(name)
    table["fused source: all ops, E edges"] = _fused_source
    table["batched group: all ops, 2 x E edges"] = _batched_group
    kernels = {
        "depthwise 3x3": lambda w, e, d: ops.conv(d, w, w, 3, groups=w),
        "depthwise 3x3 dilation 2": lambda w, e, d: ops.conv(d, w, w, 3, 1, 2, groups=w),
        "grouped 1x1 (E groups)": lambda w, e, d: ops.conv(d, w, w, 1, groups=e),
        "batch norm": lambda w, e, d: ops.norm_layer(SEARCH_NORM, d, w),
    }
    for label, make in kernels.items():
        table[f"kernel {label}, C"] = _kernel(make, wide=False)
        table[f"kernel {label}, E x C"] = _kernel(make, wide=True)
    table["kernel dense 1x1, C"] = _kernel(lambda w, e, d: ops.conv(d, w, w, 1), wide=False)
    table["kernel dense 3x3, C"] = _kernel(lambda w, e, d: ops.conv(d, w, w, 3), wide=False)
    return table


def measure(entry: Entry, args: argparse.Namespace, device: torch.device,
            dtype: torch.dtype | None, deadline: Deadline) -> dict[str, float]:
    """First-call and median seconds of forward + backward, and what one call dispatches."""
    torch.manual_seed(0)
    module, forward, channels = entry(args.channels, args.edges, args.spatial_dims)
    module = module.to(device).train()
    shape = (args.batch, channels) + (args.size,) * args.spatial_dims
    x = torch.randn(shape, device=device, requires_grad=True)

    def call() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = forward(module, x)
        out.float().sum().backward()

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    first = time.perf_counter() - started
    deadline.check("first call")
    median = median_seconds(call, device, max(args.warmup - 1, 0), args.repeats, deadline)
    counter = count_ops(call)
    casts = ", ".join(f"{name.removeprefix('aten.')} {n}"
                      for name, n in counter.casts_before.most_common(3))
    return {"first_ms": first * 1e3, "ms": median * 1e3, "kernels": counter.kernels,
            "casts": counter.casts, "cast_for": casts}


def precision_table(args: argparse.Namespace) -> pd.DataFrame:
    device = torch.device(args.device)
    precisions = list(args.precision)
    first, others = precisions[0], precisions[1:]
    columns = (["entry", "cudnn_benchmark"] + [f"{p}_ms" for p in precisions]
               + [f"{p}/{first}" for p in others] + [f"{p}_first_ms" for p in precisions]
               + [f"{p}_kernels" for p in precisions] + [f"{p}_casts" for p in others]
               + ["casts made for", "note"])
    command = command_line("bench.op_latency", args.argv)
    shape = f"{args.batch} x C x {args.size}^{args.spatial_dims}"
    heading = "\n".join([
        f"## op_latency: forward + backward per op, {' vs '.join(precisions)} "
        f"({datetime.date.today().isoformat()}, {device_description(device)})", "",
        f"Command: `{command}`  ",
        f"torch {torch.__version__}, Python {platform.python_version()}. Input {shape}, "
        f"C = {args.channels}, E = {args.edges} edges per state (fused ops, grouped 1x1; the "
        f"batched group reads 2 states). Forward under autocast for a reduced precision, then "
        f"backward of the sum; median of {args.repeats} after {args.warmup} warm-up (the first "
        "call on its own: cuDNN autotuning where cudnn_benchmark is on; a shape already tuned "
        "by an earlier entry is not tuned again). A ratio above 1: slower than "
        f"{first}. kernels: aten ops of one call that launch a kernel; casts: dtype conversions "
        "(aten._to_copy), with the ops they were made for most often."])
    table = MarkdownRows(heading, columns, args.no_write, args.output)
    modes = args.cudnn_benchmark if device.type == "cuda" else ["n/a"]
    for mode in modes:
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = mode == "on"
        for label, entry in entries().items():
            row: dict[str, Any] = {"entry": label, "cudnn_benchmark": mode, "note": ""}
            cast_for = ""
            for precision in precisions:
                try:
                    result = measure(entry, args, device, DTYPES[precision],
                                     Deadline(args.variant_timeout))
                except TimeLimitExceeded as error:
                    row["note"] += f"{precision}: {error}. "
                    continue
                row[f"{precision}_ms"] = result["ms"]
                row[f"{precision}_first_ms"] = result["first_ms"]
                row[f"{precision}_kernels"] = result["kernels"]
                if precision != first:
                    row[f"{precision}_casts"] = result["casts"]
                    cast_for = cast_for or result["cast_for"]
            for precision in others:
                mine, theirs = row.get(f"{precision}_ms"), row.get(f"{first}_ms")
                if mine is not None and theirs is not None:
                    row[f"{precision}/{first}"] = mine / theirs
            row["casts made for"] = cast_for
            table.add(row)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    table.close()
    return pd.DataFrame(table.rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.op_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", nargs="+", choices=list(DTYPES), default=None,
                        help="compare forward + backward per op under these precisions (the "
                             "first is the anchor of the ratios)")
    parser.add_argument("--size", type=int, default=None,
                        help="spatial edge (default 64; with --precision 256)")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2, help="with --precision")
    parser.add_argument("--edges", type=int, default=4, help="edges per state (--precision)")
    parser.add_argument("--spatial-dims", type=int, default=2, choices=(2, 3))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls (default 50; with --precision 10)")
    parser.add_argument("--warmup", type=int, default=3, help="with --precision")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cudnn-benchmark", nargs="+", choices=("on", "off"),
                        default=["on", "off"], help="CUDA, with --precision")
    parser.add_argument("--variant-timeout", type=float, default=None, metavar="S",
                        help="seconds per entry and precision, checked between calls")
    add_publish_arguments(parser)
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = 256 if args.precision else 64
    if args.repeats is None:
        args.repeats = 10 if args.precision else 50
    args.argv = argv
    return args


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.precision:
        return precision_table(args)
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
