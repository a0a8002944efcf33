"""One search step, ours against the straightforward reference supernet, lever by lever.

A step is what the issue defines: first order, one architecture update (Adam on the alphas,
validation batch) and one weight update (SGD, training batch), batch 2, 256x256 (3 channels),
16 channels, 2/3/2 cells, the 8 search ops. The reference is ``ref_darts_unet.py`` (every op
of every edge, fp32); our variants switch one lever each (``VARIANTS``). Every variant runs in
its own subprocess, so its peak memory is its own: on CUDA the peak bytes allocated, on CPU the
growth of the peak resident set over the steps. Ratios are to the reference of the same run.

GPU:  python -m bench.search_step --reference PATH/ref_darts_unet.py
CPU:  python -m bench.search_step --reference PATH/ref_darts_unet.py --size 64 --steps 3
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import resource
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from torch import nn

from bench.common import device_description, median_seconds, publish

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
    "ours, bf16": {"impl": "ours", "precision": "bf16", "cuda_only": True},
    "ours, fused + bf16": {"impl": "ours", "fused": True, "precision": "bf16",
                           "cuda_only": True},
    "ours, fused + bf16 + compile": {"impl": "ours", "fused": True, "precision": "bf16",
                                     "compile": True, "cuda_only": True},
}


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
    if settings["impl"] == "reference":
        reference = load_reference(Path(args.reference))
        model = reference.UNetSupernet(3, 1, args.channels, *layout).to(device)
        arch = [model.alpha]
        weights = [p for p in model.parameters() if p is not model.alpha]
        return model, arch, weights, None
    from nas.search.costs import CostModel
    from supernet import USupernet

    model = USupernet(3, 1, args.channels, layout, partial_channels=settings.get(
        "partial_channels", 1), edge_normalization=settings.get("edge_normalization", False),
        project_output=settings.get("project_output", False),
        fused=settings.get("fused", False)).to(device)
    if settings.get("prune_keep"):
        # progressive shrinking's end state: each edge keeps its strongest prune_keep ops
        for key in model.architecture.keys:
            weights = model.architecture.weights(key)
            for edge, row in enumerate(weights):
                for op in row.argsort()[: len(row) - settings["prune_keep"]].tolist():
                    model.architecture.prune(key, edge, op)
    costs = CostModel(model, (args.size, args.size)).to(device)

    def penalty() -> torch.Tensor:
        return costs.penalty(model, {"params": 0.015, "flops": 0.005})

    return model, model.arch_parameters(), model.weight_parameters(), penalty


def run_variant(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Time ``args.steps`` steps of one variant in this process; return time and memory."""
    settings = VARIANTS[name]
    device = torch.device(args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model, arch, weights, penalty = build(settings, args, device)
    memory_format = torch.channels_last if settings.get("channels_last") else None
    if memory_format:
        model = model.to(memory_format=memory_format)
    forward = torch.compile(model) if settings.get("compile") else model
    dtype = torch.bfloat16 if settings.get("precision") == "bf16" else None
    weight_optimizer = torch.optim.SGD(weights, lr=0.005, momentum=0.9, weight_decay=3e-4)
    arch_optimizer = torch.optim.Adam(arch, lr=6e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    generator = torch.Generator().manual_seed(1)
    shape = (args.batch, 3, args.size, args.size)
    images = [torch.randn(*shape, generator=generator).to(device) for _ in range(2)]
    if memory_format:
        images = [image.contiguous(memory_format=memory_format) for image in images]
    targets = [(torch.rand(args.batch, 1, args.size, args.size, generator=generator) > 0.7)
               .float().to(device) for _ in range(2)]

    def loss(index: int) -> torch.Tensor:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = forward(images[index])
        return bce_dice(logits, targets[index])

    def step() -> None:
        arch_optimizer.zero_grad(set_to_none=True)
        value = loss(1) + (penalty() if penalty else 0.0)
        for param, grad in zip(arch, torch.autograd.grad(value, arch, allow_unused=True)):
            param.grad = grad
        arch_optimizer.step()
        weight_optimizer.zero_grad(set_to_none=True)
        loss(0).backward()
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        weight_optimizer.step()

    start_rss = _current_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = median_seconds(step, device, args.warmup, args.steps)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start_rss
    return {"variant": name, "step_ms": seconds * 1000, "peak_MB": peak / 2**20}


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
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--layout", default="2/3/2")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None)
    parser.add_argument("--output", default=None, help="markdown file to append to "
                                                      "(default: BENCHMARKS.md)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame | None:
    args = parse_args(argv)
    if args.reference is None:
        raise SystemExit("error: --reference PATH is required: every ratio is to the reference "
                         "supernet of the same run (../shared/bench/ref_darts_unet.py)")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(run_variant(args.one, args)))
        return None
    device = torch.device(args.device)
    names = args.variants or [n for n, s in VARIANTS.items()
                              if device.type == "cuda" or not s.get("cuda_only")]
    if "reference" not in names:
        names = ["reference"] + names
    passthrough = [a for a in (sys.argv[1:] if argv is None else list(argv))
                   if a not in ("--no-write",)]
    rows = []
    for name in names:
        result = subprocess.run([sys.executable, "-m", "bench.search_step", *passthrough,
                                 "--one", name], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parents[1])
        if result.returncode != 0:
            rows.append({"variant": name, "error": result.stderr.strip().splitlines()[-1]})
        else:
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(f"done: {name}", file=sys.stderr)
    frame = pd.DataFrame(rows)
    reference = frame.set_index("variant").loc["reference"]
    frame["speedup"] = reference["step_ms"] / frame["step_ms"]
    frame["memory_ratio"] = frame["peak_MB"] / reference["peak_MB"]
    frame = frame.round(3)
    command = "python -m bench.search_step " + " ".join(shlex.quote(a) for a in passthrough)
    memory = ("peak CUDA bytes allocated over the steps" if device.type == "cuda" else
              "growth of the process's peak resident set over the steps")
    section = "\n".join([
        f"## search_step: one search step, ours vs the reference "
        f"({datetime.date.today().isoformat()}, {device_description(device)})", "",
        f"Command: `{command}`  ",
        f"torch {torch.__version__}, Python {platform.python_version()}. Step: first order, one "
        f"architecture + one weight update, batch {args.batch}, {args.size}x{args.size}, "
        f"{args.channels} channels, layout {args.layout}, 8 search ops; median of {args.steps} "
        f"steps after {args.warmup} warm-up. Memory: {memory}. speedup = reference time / "
        "variant time; memory_ratio = variant / reference.", "",
        frame.to_markdown(index=False), ""])
    publish(section, args.no_write, args.output)
    return frame


if __name__ == "__main__":
    main()
