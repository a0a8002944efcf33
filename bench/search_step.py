"""One search step, ours against the straightforward reference supernet, lever by lever.

A step is what the issue defines: first order, one architecture update (Adam on the alphas,
validation batch) and one weight update (SGD, training batch), batch 2, 256x256 (3 channels),
16 channels, 2/3/2 cells, the 8 search ops. The reference is ``ref_darts_unet.py`` (every op
of every edge, fp32); our variants switch one lever each (``VARIANTS``). Every variant runs in
its own subprocess, so its peak memory is its own: on CUDA the peak bytes allocated, on CPU the
growth of the peak resident set over the steps. Ratios are to the reference of the same run.

Each variant's row is printed and appended to BENCHMARKS.md as soon as it finishes (the section
heading first), so a run cut short keeps what it measured; ``--variant-timeout S`` stops a
variant's process after S seconds and writes a row saying so. ``kernels`` counts the aten ops
of one step that launch a kernel (``bench.dispatch``; counted on CPU and CUDA alike): what a
launch-bound GPU step's time follows. A CUDA-graph variant replays those as one graph launch.

GPU:  python -m bench.search_step --reference PATH/ref_darts_unet.py --variant-timeout 60
CPU:  python -m bench.search_step --reference PATH/ref_darts_unet.py --size 64 --steps 3

``--spatial-dims 3``: the 3D search step (``VARIANTS_3D``) of ``search.py --dataset brats``:
batch 2, 4 x 64^3 crops, 8 channels, 2/2/2 cells, 3 sigmoid outputs (WT/TC/ET), projected cell
outputs; the anchor of the ratios is our own per-edge supernet (no reference is needed):

3D:   python -m bench.search_step --spatial-dims 3 --device cpu --steps 1 --warmup 0
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from torch import nn

from bench.common import (
    MarkdownRows,
    add_publish_arguments,
    command_line,
    device_description,
    median_seconds,
    run_variant_process,
)
from bench.dispatch import count_ops

#: name -> settings; "reference" is the anchor every ratio divides by.
VARIANTS: dict[str, dict[str, Any]] = {
    "reference": {"impl": "reference"},
    # ours, the same macro as the reference (cell outputs concatenated, not projected)
    "ours": {"impl": "ours"},
    "ours, projected cell outputs": {"impl": "ours", "project_output": True},
    "ours, fused edges": {"impl": "ours", "fused": True},
    "ours, partial channels K=4": {"impl": "ours", "partial_channels": 4,
                                   "edge_normalization": True},
    "ours, half the ops pruned": {"impl": "ours", "prune_keep": 4},
    "ours, channels-last": {"impl": "ours", "channels_last": True},
    "ours, fused + channels-last": {"impl": "ours", "fused": True, "channels_last": True},
    "ours, fused + partial channels K=4": {"impl": "ours", "fused": True,
                                           "partial_channels": 4, "edge_normalization": True},
    "ours, fused + K=4 + channels-last": {"impl": "ours", "fused": True, "partial_channels": 4,
                                          "edge_normalization": True, "channels_last": True},
    # fewer kernels still: the cell inputs' edges together, stacked last norms and mixed sums
    "ours, batched": {"impl": "ours", "batched": True},
    "ours, batched + partial channels K=4": {"impl": "ours", "batched": True,
                                             "partial_channels": 4, "edge_normalization": True},
    # only the cells' inputs kept for backward, each cell run again there
    "ours, batched + checkpointed cells": {"impl": "ours", "batched": True,
                                           "checkpoint_cells": True},
    # the whole step (both updates) replayed as one CUDA graph: no launch or Python overhead
    "ours, fused + CUDA graph": {"impl": "ours", "fused": True, "cuda_graph": True,
                                 "cuda_only": True},
    "ours, batched + CUDA graph": {"impl": "ours", "batched": True, "cuda_graph": True,
                                   "cuda_only": True},
    "ours, batched + K=4 + CUDA graph": {"impl": "ours", "batched": True, "partial_channels": 4,
                                         "edge_normalization": True, "cuda_graph": True,
                                         "cuda_only": True},
    "ours, batched + checkpointed + CUDA graph": {"impl": "ours", "batched": True,
                                                  "checkpoint_cells": True, "cuda_graph": True,
                                                  "cuda_only": True},
    # the supernet's forward and backward compiled, replayed by CUDA graph trees
    "ours, batched + compile (reduce-overhead)": {"impl": "ours", "batched": True,
                                                  "compile": "reduce-overhead",
                                                  "cuda_only": True},
    "ours, bf16": {"impl": "ours", "precision": "bf16", "cuda_only": True},
    "ours, fused + bf16": {"impl": "ours", "fused": True, "precision": "bf16",
                           "cuda_only": True},
    "ours, fused + bf16 + compile": {"impl": "ours", "fused": True, "precision": "bf16",
                                     "compile": True, "cuda_only": True},
    "ours, batched + bf16": {"impl": "ours", "batched": True, "precision": "bf16",
                             "cuda_only": True},
}


#: The 3D search's levers, one at a time and combined; "per-edge" is the anchor.
VARIANTS_3D: dict[str, dict[str, Any]] = {
    "per-edge": {"impl": "ours", "project_output": True},
    "fused edges": {"impl": "ours", "project_output": True, "fused": True},
    "partial channels K=2": {"impl": "ours", "project_output": True, "partial_channels": 2,
                             "edge_normalization": True},
    "partial channels K=4": {"impl": "ours", "project_output": True, "partial_channels": 4,
                             "edge_normalization": True},
    "half the ops pruned": {"impl": "ours", "project_output": True, "prune_keep": 4},
    "fused + K=2": {"impl": "ours", "project_output": True, "fused": True,
                    "partial_channels": 2, "edge_normalization": True},
    "fused + K=4": {"impl": "ours", "project_output": True, "fused": True,
                    "partial_channels": 4, "edge_normalization": True},
    "fused + half the ops pruned": {"impl": "ours", "project_output": True, "fused": True,
                                    "prune_keep": 4},
    "fused + K=4 + half pruned": {"impl": "ours", "project_output": True, "fused": True,
                                  "partial_channels": 4, "edge_normalization": True,
                                  "prune_keep": 4},
    "batched": {"impl": "ours", "project_output": True, "batched": True},
    "batched + K=2": {"impl": "ours", "project_output": True, "batched": True,
                      "partial_channels": 2, "edge_normalization": True},
    "batched + K=4": {"impl": "ours", "project_output": True, "batched": True,
                      "partial_channels": 4, "edge_normalization": True},
    "batched + K=2 + checkpointed": {"impl": "ours", "project_output": True, "batched": True,
                                     "partial_channels": 2, "edge_normalization": True,
                                     "checkpoint_cells": True},
    "batched + K=2 + CUDA graph": {"impl": "ours", "project_output": True, "batched": True,
                                   "partial_channels": 2, "edge_normalization": True,
                                   "cuda_graph": True, "cuda_only": True},
}
#: The 3D step's defaults (the BraTS search: 4 modalities, 3 regions, 64^3 crops).
DEFAULTS = {2: {"size": 256, "channels": 16, "layout": "2/3/2", "in_channels": 3, "classes": 1},
            3: {"size": 64, "channels": 8, "layout": "2/2/2", "in_channels": 4, "classes": 3}}


def variants(spatial_dims: int) -> dict[str, dict[str, Any]]:
    return VARIANTS if spatial_dims == 2 else VARIANTS_3D


def anchor(spatial_dims: int) -> str:
    return "reference" if spatial_dims == 2 else "per-edge"


def load_reference(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reference supernet not found; pass --reference")
    spec = importlib.util.spec_from_file_location("ref_darts_unet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bce_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The search loss (BCE + soft Dice), the same for both implementations."""
    logits = logits.float()
    probability = logits.sigmoid()
    intersection = (probability * target).flatten(1).sum(1)
    total = probability.flatten(1).sum(1) + target.flatten(1).sum(1)
    dice = 1 - (2 * intersection + 1e-5) / (total + 1e-5)
    return nn.functional.binary_cross_entropy_with_logits(logits, target) + dice.mean()


def build(settings: dict, args: argparse.Namespace, device: torch.device):
    """(model, arch params, weight params, extra architecture loss)"""
    layout = [int(v) for v in args.layout.split("/")]
    dims = args.spatial_dims
    if settings["impl"] == "reference":
        reference = load_reference(Path(args.reference))
        model = reference.UNetSupernet(3, 1, args.channels, *layout).to(device)
        arch = [model.alpha]
        weights = [p for p in model.parameters() if p is not model.alpha]
        return model, arch, weights, None
    from nas.search.costs import CostModel
    from supernet import USupernet

    model = USupernet(args.in_channels, args.classes, args.channels, layout,
                      partial_channels=settings.get("partial_channels", 1),
                      edge_normalization=settings.get("edge_normalization", False),
                      project_output=settings.get("project_output", False),
                      fused=settings.get("fused", False), batched=settings.get("batched", False),
                      checkpoint_cells=settings.get("checkpoint_cells", False),
                      spatial_dims=dims,
                      output_activation="sigmoid").to(device)
    if settings.get("prune_keep"):
        # progressive shrinking's end state: each edge keeps its strongest prune_keep ops
        for key in model.architecture.keys:
            weights = model.architecture.weights(key)
            for edge, row in enumerate(weights):
                for op in row.argsort()[: len(row) - settings["prune_keep"]].tolist():
                    model.architecture.prune(key, edge, op)
    costs = CostModel(model, (args.size,) * dims).to(device)

    def penalty() -> torch.Tensor:
        return costs.penalty(model, {"params": 0.015, "flops": 0.005})

    return model, model.arch_parameters(), model.weight_parameters(), penalty


def run_variant(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Time ``args.steps`` steps of one variant in this process; return time, memory and the
    kernels one step launches."""
    settings = variants(args.spatial_dims)[name]
    device = torch.device(args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model, arch, weights, penalty = build(settings, args, device)
    memory_format = (torch.channels_last if args.spatial_dims == 2 else torch.channels_last_3d
                     ) if settings.get("channels_last") else None
    if memory_format:
        model = model.to(memory_format=memory_format)
    compile_mode = settings.get("compile")
    forward = (torch.compile(model, mode=None if compile_mode is True else compile_mode)
               if compile_mode else model)
    dtype = torch.bfloat16 if settings.get("precision") == "bf16" else None
    graphed = bool(settings.get("cuda_graph")) and device.type == "cuda"
    # foreach: CUDA's default (a few multi-tensor kernels per update), also on CPU so that the
    # kernel counts of one step compare across devices; a captured Adam keeps its step count
    # on the device
    weight_optimizer = torch.optim.SGD(weights, lr=0.005, momentum=0.9, weight_decay=3e-4,
                                       foreach=True)
    arch_optimizer = torch.optim.Adam(arch, lr=6e-4, betas=(0.5, 0.999), weight_decay=1e-3,
                                      capturable=graphed, foreach=True)
    generator = torch.Generator().manual_seed(1)
    spatial = (args.size,) * args.spatial_dims
    shape = (args.batch, args.in_channels) + spatial
    images = [torch.randn(*shape, generator=generator).to(device) for _ in range(2)]
    if memory_format:
        images = [image.contiguous(memory_format=memory_format) for image in images]
    targets = [(torch.rand(args.batch, args.classes, *spatial, generator=generator) > 0.7)
               .float().to(device) for _ in range(2)]

    def loss(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # no autocast cache: a CUDA graph must not hold casts made outside its capture
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None,
                            cache_enabled=not graphed):
            logits = forward(image)
        return bce_dice(logits, target)

    def step(train_image, train_target, val_image, val_target) -> tuple[torch.Tensor, ...]:
        arch_optimizer.zero_grad(set_to_none=True)
        value = loss(val_image, val_target) + (penalty() if penalty else 0.0)
        for param, grad in zip(arch, torch.autograd.grad(value, arch, allow_unused=True)):
            param.grad = grad
        arch_optimizer.step()
        weight_optimizer.zero_grad(set_to_none=True)
        train_loss = loss(train_image, train_target)
        train_loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, 5.0, foreach=True)
        weight_optimizer.step()
        return value.detach(), train_loss.detach()

    batch = (images[0], targets[0], images[1], targets[1])
    if graphed:
        from nas.train.cuda_graph import GraphedStep

        runner = GraphedStep(step, warmup=max(args.warmup, 1))
        timed = lambda: runner(*batch)  # noqa: E731
    else:
        timed = lambda: step(*batch)  # noqa: E731
    start_rss = _current_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    timed()  # the first step: cuDNN autotuning, lazy initialisation (and a graph's warm-up)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    first = time.perf_counter() - started
    seconds = median_seconds(timed, device, max(args.warmup - 1, 0) + (1 if graphed else 0),
                             args.steps)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start_rss
    kernels, casts, note = float("nan"), float("nan"), ""
    if compile_mode:
        note = "compiled: kernels not counted"
    else:  # one more eager step under the counter (a graph variant: what its graph holds)
        counter = count_ops(lambda: step(*batch))
        kernels, casts = counter.kernels, counter.casts
        if graphed:
            note = f"{runner.captures} graph capture(s), 1 launch per step"
    return {"variant": name, "step_ms": seconds * 1000, "first_step_s": first,
            "peak_MB": peak / 2**20, "kernels": kernels, "casts": casts, "note": note}


def _current_rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.search_step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # the reference is Python code this script executes: it is taken only from a path the
    # user names, never looked up beside the checkout (where anyone may have put a file)
    parser.add_argument("--reference", metavar="PATH",
                        help="the reference supernet (../shared/bench/ref_darts_unet.py), the "
                             "anchor of every ratio (required)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--spatial-dims", type=int, choices=(2, 3), default=2,
                        help="3: the 3D search step, anchored on our per-edge supernet")
    parser.add_argument("--size", type=int, help="side of the input (default 256; 3D: 64)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--channels", type=int, help="width of the first cells (16; 3D: 8)")
    parser.add_argument("--layout", help="cell counts (2/3/2; 3D: 2/2/2)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS) + list(VARIANTS_3D),
                        default=None, help="those of --spatial-dims' table (default: all)")
    parser.add_argument("--variant-timeout", type=float, default=None, metavar="S",
                        help="stop a variant's process after S seconds (its row says so)")
    parser.add_argument("--memory-limit-gb", type=float, default=None,
                        help="address-space limit of each variant's process (CPU): a variant "
                             "that needs more fails with an error row instead of exhausting "
                             "the machine's memory")
    add_publish_arguments(parser)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = parser.parse_args(argv)
    for key, value in DEFAULTS[args.spatial_dims].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    unknown = [name for name in args.variants or () if name not in variants(args.spatial_dims)]
    if unknown:
        parser.error(f"--variants {', '.join(unknown)}: not {args.spatial_dims}D variants; "
                     f"choose from {', '.join(variants(args.spatial_dims))}")
    return args


COLUMNS = ["variant", "step_ms", "speedup", "peak_MB", "memory_ratio", "kernels",
           "kernel_ratio", "casts", "first_step_s", "note"]


def _run_one(name: str, passthrough: list[str], timeout: float | None) -> dict[str, Any]:
    """One variant in its own process, within ``timeout`` seconds (a name tests replace)."""
    return run_variant_process("bench.search_step", name, passthrough, timeout)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame | None:
    args = parse_args(argv)
    if args.reference is None and args.spatial_dims == 2:
        raise SystemExit("error: --reference PATH is required: every ratio is to the reference "
                         "supernet of the same run (../shared/bench/ref_darts_unet.py)")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        if args.memory_limit_gb:
            limit = int(args.memory_limit_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        print(json.dumps(run_variant(args.one, args)))
        return None
    device = torch.device(args.device)
    base = anchor(args.spatial_dims)
    names = args.variants or [n for n, s in variants(args.spatial_dims).items()
                              if device.type == "cuda" or not s.get("cuda_only")]
    names = [base] + [name for name in names if name != base]  # the anchor first
    passthrough = [a for a in (sys.argv[1:] if argv is None else list(argv))
                   if a not in ("--no-write",)]
    command = command_line("bench.search_step", passthrough)
    memory = ("peak CUDA bytes allocated over the steps" if device.type == "cuda" else
              "growth of the process's peak resident set over the steps")
    if args.spatial_dims == 2:
        title = "## search_step: one search step, ours vs the reference"
        what = f"batch {args.batch}, {args.size}x{args.size}"
    else:
        title = "## search_step 3D: one 3D search step, fused vs per-edge, lever by lever"
        what = (f"batch {args.batch} x {args.in_channels} x {args.size}^3, {args.classes} sigmoid "
                "outputs, projected cell outputs")
    limit = (f"; each variant stopped after {args.variant_timeout:g} s"
             if args.variant_timeout else "")
    heading = "\n".join([
        f"{title} ({datetime.date.today().isoformat()}, {device_description(device)})", "",
        f"Command: `{command}`  ",
        f"torch {torch.__version__}, Python {platform.python_version()}. Step: first order, one "
        f"architecture + one weight update, {what}, "
        f"{args.channels} channels, layout {args.layout}, 8 search ops; median of {args.steps} "
        f"steps after {args.warmup} warm-up (first_step_s: the first step alone){limit}. Memory: "
        f"{memory}. speedup = {base} time / variant time; memory_ratio = variant / {base}; "
        f"kernels: aten ops of one step that launch a kernel (bench.dispatch), kernel_ratio = "
        f"variant / {base}; casts: the dtype conversions among them (aten._to_copy: autocast's "
        "under bf16). Rows are written as each variant finishes."])
    table = MarkdownRows(heading, COLUMNS, args.no_write, args.output)
    reference: dict[str, Any] = {}
    for name in names:
        row = _run_one(name, passthrough, args.variant_timeout)
        if name == base:
            reference = row
        for value, ratio, inverse in (("step_ms", "speedup", True),
                                      ("peak_MB", "memory_ratio", False),
                                      ("kernels", "kernel_ratio", False)):
            mine, theirs = row.get(value), reference.get(value)
            row[ratio] = (float("nan") if mine is None or theirs is None
                          else (theirs / mine if inverse else mine / theirs))
        table.add(row)
        print(f"done: {name}", file=sys.stderr)
    table.close()
    frame = pd.DataFrame(table.rows)
    for column in COLUMNS:
        if column not in frame:  # every variant failed
            frame[column] = float("nan")
    return frame[COLUMNS]


if __name__ == "__main__":
    main()
