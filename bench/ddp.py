"""Data-parallel scaling: training throughput with 1 process against N processes.

Each process runs the real loops' step on synthetic 2D batches: a search step (architecture
update + weight update of the supernet, gradients averaged across processes, SyncBatchNorm) or
a retrain step (a derived network under DistributedDataParallel). N processes with batch b each
train on N x b images per step; throughput is images per second over all processes, and
efficiency = throughput(N) / (N x throughput(1)). Processes join through gloo (CPU) or nccl
(one GPU each); on a CPU the processes share its cores, so there the figure shows the
communication overhead more than a speed-up.

python -m bench.ddp --processes 2 --size 64 --steps 5
"""
from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
import torch.distributed as dist

from bench.common import BENCHMARKS, append_section, device_description, median_seconds


def _step_function(kind: str, args: argparse.Namespace, context, sync_bn: bool = True):
    """A closure running one training step of ``kind`` on this rank's synthetic batch."""
    import ops
    from nas.search.architect import Architect
    from nas.train.distributed import all_reduce_gradients, all_reduce_tensors, wrap_model
    from supernet import USupernet, from_genotype
    from supernet.genotype import Genotype

    torch.manual_seed(0)
    device = context.device
    generator = torch.Generator().manual_seed(context.rank)
    images = torch.randn(args.batch, 3, args.size, args.size, generator=generator).to(device)
    labels = (torch.rand(args.batch, 1, args.size, args.size, generator=generator) > 0.7
              ).float().to(device)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    if kind == "search":
        model = USupernet(3, 1, args.channels, args.layout, fused=True)
        if context.enabled and sync_bn:
            model = ops.convert_sync_batchnorm(model)
        model = model.to(device)
        weights = model.weight_parameters()
        optimizer = torch.optim.SGD(weights, lr=0.005, momentum=0.9)
        architect = Architect(model, lambda m, b: loss_fn(m(b[0]), b[1]),
                              lambda m, b: loss_fn(m(b[0]), b[1]),
                              reduce_hook=lambda t: all_reduce_tensors(t, context))

        def step() -> None:
            architect.step((images, labels), (images, labels), optimizer)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(images), labels).backward()
            all_reduce_gradients(weights, context)
            optimizer.step()
        return step
    cell = ((("sep_conv_3x3", 0), ("ghost", 1)), (("skip_connect", 0), ("sk", 2)),
            (("dil_conv_3x3", 1), ("max_pool_3x3", 3)), (("shuffle_conv_3x3", 4), ("ghost", 0)))
    layout = dict(zip(("encoder", "middle", "decoder"), map(int, args.layout.split("/"))))
    types = tuple(k for k in layout for _ in range(layout[k]))
    genotype = Genotype("unet", {k: cell for k in layout}, types, layout, args.channels, 3, 1,
                        primitives=ops.SEARCH_OPS)
    model = wrap_model(from_genotype(genotype), context, sync_batchnorm=sync_bn)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()
    return step


def _worker(rank: int, world: int, rendezvous: str, kind: str, sync_bn: bool,
            args: argparse.Namespace, results: str) -> None:
    from nas.train.distributed import DistributedContext, resolve_device

    torch.set_num_threads(args.threads_per_process)
    device = resolve_device(args.device, rank)
    if world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method=f"file://{rendezvous}", rank=rank,
                                world_size=world)
    context = DistributedContext(rank, world, rank, device)
    seconds = median_seconds(_step_function(kind, args, context, sync_bn), device, args.warmup,
                             args.steps)
    if rank == 0:
        Path(results).write_text(str(seconds))
    if world > 1:
        dist.destroy_process_group()


def measure(kind: str, world: int, args: argparse.Namespace, sync_bn: bool = True) -> float:
    """Median step seconds of rank 0 with ``world`` processes."""
    with tempfile.TemporaryDirectory(prefix="lwnas-ddp-") as scratch:
        results = os.path.join(scratch, "seconds")
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=_worker, args=(rank, world,
                                                           os.path.join(scratch, "rendezvous"),
                                                           kind, sync_bn, args, results))
                     for rank in range(world)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        if any(p.exitcode != 0 for p in processes):
            raise RuntimeError(f"{kind} with {world} processes failed")
        return float(Path(results).read_text())


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m bench.ddp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--kinds", nargs="+", default=["search", "retrain"],
                        choices=["search", "retrain"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2, help="images per process per step")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--layout", default="2/3/2")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads-per-process", type=int, default=1,
                        help="CPU threads of each process (1 process uses one core, N use N)")
    parser.add_argument("--output", default=str(BENCHMARKS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for kind in args.kinds:
        one = args.batch / measure(kind, 1, args)
        # SyncBatchNorm (the default) all-reduces in every BN layer; local BN shows that cost
        for sync_bn in (True, False):
            many = args.processes * args.batch / measure(kind, args.processes, args, sync_bn)
            rows.append({"step": kind, "batch norm": "sync" if sync_bn else "local",
                         "1 process (img/s)": round(one, 2),
                         f"{args.processes} processes (img/s)": round(many, 2),
                         "speedup": round(many / one, 3),
                         "efficiency": round(many / (args.processes * one), 3)})
        print(f"done: {kind}", file=sys.stderr)
    frame = pd.DataFrame(rows)
    from nas.train.distributed import resolve_device

    device = resolve_device(args.device)
    command = "python -m bench.ddp " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else list(argv)))
    section = "\n".join([
        f"## ddp: data-parallel throughput, 1 vs {args.processes} processes "
        f"({datetime.date.today().isoformat()}, {device_description(device)})", "",
        f"Command: `{command}`  ",
        f"torch {torch.__version__}, Python {platform.python_version()}; batch {args.batch} per "
        f"process, {args.size}x{args.size}, {args.channels} channels, layout {args.layout}; "
        f"median of {args.steps} steps."
        + (f" {args.threads_per_process} CPU thread(s) per process, "
           f"{os.cpu_count()} cores." if device.type == "cpu" else ""), "",
        frame.to_markdown(index=False), ""])
    print("\n" + section)
    if not args.no_write:
        print(f"appended to {append_section(section, args.output)}")
    return frame


if __name__ == "__main__":
    main()
