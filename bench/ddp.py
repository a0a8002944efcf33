"""Data-parallel scaling: training throughput with 1 process against N processes, 1 node
against N nodes, and what the per-epoch checkpoint costs.

Each process runs the real loops' step on synthetic 2D batches: a search step (architecture
update + weight update of the supernet, gradients averaged across processes, SyncBatchNorm) or
a retrain step (a derived network under DistributedDataParallel). N processes with batch b each
train on N x b images per step; throughput is images per second over all processes, and
efficiency = throughput(N) / (N x throughput(1)). Processes join through gloo (CPU) or nccl
(one GPU each); on a CPU the processes share its cores, so there the figure shows the
communication overhead more than a speed-up.

Nodes: the same step under torchrun's c10d rendezvous, once as 1 node x N processes and once
as N "nodes" x 1 process (N torchrun launches on the loopback address of this machine: the
multi-node code path, without a network between the nodes).

Checkpoints: the real search and retrain loops on the sample data for two epochs; the time to
write checkpoint.pt (atomic: temp file, fsync, rename) against the epoch's training time.

python -m bench.ddp --processes 2 --size 64 --steps 5
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
import torch.distributed as dist

from bench.common import add_publish_arguments, command_line, device_description, median_seconds, publish


def _step_function(kind: str, args: argparse.Namespace, context, sync_bn: bool = True):
    """A closure running one training step of ``kind`` on this rank's synthetic batch."""
    import ops
    from nas.search.architect import Architect
    from nas.train.distributed import all_reduce_gradients, all_reduce_tensors, wrap_model
    from supernet import USupernet, from_genotype

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
    model = wrap_model(from_genotype(_genotype(args)), context, sync_batchnorm=sync_bn)
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


def _torchrun_worker(args: argparse.Namespace) -> None:
    """One process of a torchrun launch (``--torchrun-worker KIND``): rank 0 writes the median
    step seconds to ``--results``."""
    from nas.train.distributed import init_distributed

    context = init_distributed(args.device)
    torch.set_num_threads(args.threads_per_process)
    seconds = median_seconds(_step_function(args.torchrun_worker, args, context), context.device,
                             args.warmup, args.steps)
    if context.is_main:
        Path(args.results).write_text(str(seconds))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure_torchrun(kind: str, nodes: int, per_node: int, args: argparse.Namespace) -> float:
    """Median step seconds of rank 0 under torchrun: ``nodes`` launches (loopback c10d
    rendezvous) of ``per_node`` processes each."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="lwnas-ddp-") as scratch:
        results = os.path.join(scratch, "seconds")
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nodes),
                    "--nproc-per-node", str(per_node), "--rdzv-backend", "c10d",
                    "--rdzv-endpoint", f"127.0.0.1:{_free_port()}"]
        worker = ["-m", "bench.ddp", "--torchrun-worker", kind, "--results", results,
                  "--device", args.device, "--size", str(args.size), "--batch", str(args.batch),
                  "--channels", str(args.channels), "--layout", args.layout,
                  "--steps", str(args.steps), "--warmup", str(args.warmup),
                  "--threads-per-process", str(args.threads_per_process)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads_per_process)}
        launches = [subprocess.Popen([*launcher, "--node-rank", str(node), *worker], cwd=root,
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
                    for node in range(nodes)]
        errors = [launch.communicate()[1] for launch in launches]
        if any(launch.returncode != 0 for launch in launches):
            raise RuntimeError(f"{kind} with {nodes} node(s) x {per_node} failed:\n"
                               + "\n".join(e[-2000:] for e in errors))
        return float(Path(results).read_text())


def checkpoint_costs(args: argparse.Namespace, epochs: int = 2) -> pd.DataFrame:
    """The real loops of ``--kinds`` on the sample data (dsb2018, ``--size``, batch ``--batch``,
    one process of ``--threads-per-process`` threads): median epoch seconds (training and
    validation, as log.csv counts them) against the median time to write checkpoint.pt, and
    its size."""
    device = torch.device(args.device if args.device != "auto" else "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads_per_process)  # as each process of the tables above
    try:
        return _checkpoint_rows(args, device, epochs)
    finally:
        torch.set_num_threads(threads)


def _checkpoint_rows(args: argparse.Namespace, device: torch.device, epochs: int) -> pd.DataFrame:
    import data
    import nas.search.loop
    import nas.train.loop

    sets = {split: data.get_dataset("dsb2018", None, split, 0, image_size=args.size,
                                    augment=split == "train") for split in ("train", "val")}
    rows = []
    with tempfile.TemporaryDirectory(prefix="lwnas-ckpt-") as scratch:
        for name, module, run in (("search", nas.search.loop, _search_epochs),
                                  ("retrain", nas.train.loop, _retrain_epochs)):
            if name not in args.kinds:
                continue
            out = Path(scratch) / name
            with _timed_checkpoints(module) as writes:
                history, model = run(out, sets, args, device, epochs)
            epoch = statistics.median(row["seconds"] for row in history)
            write = statistics.median(writes)
            rows.append({"loop": name,
                         "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
                         "epoch (s)": round(epoch, 3),
                         "checkpoint.pt (MB)": round((out / "checkpoint.pt").stat().st_size
                                                     / 2**20, 2),
                         "write (ms)": round(write * 1e3, 1),
                         "write / epoch": round(write / epoch, 4)})
    return pd.DataFrame(rows)


@contextlib.contextmanager
def _timed_checkpoints(module):
    """The seconds of each checkpoint.pt write of ``module``'s loop (its ``save_checkpoint``)."""
    writes: list[float] = []
    original = module.save_checkpoint

    def timed(path, state):
        started = time.perf_counter()
        written = original(path, state)
        if Path(path).name == "checkpoint.pt":
            writes.append(time.perf_counter() - started)
        return written

    module.save_checkpoint = timed
    try:
        yield writes
    finally:
        module.save_checkpoint = original


def _search_epochs(out: Path, sets: dict, args: argparse.Namespace, device: torch.device,
                   epochs: int):
    from nas.search import SearchConfig, run_search
    from nas.train import DistributedContext

    config = SearchConfig.from_preset("dsb2018", layout=args.layout, epochs=epochs,
                                      channels=args.channels, image_size=args.size,
                                      batch_size=args.batch, num_workers=0, progress=False)
    result = run_search(config, sets["train"], sets["val"], out,
                        context=DistributedContext(device=device))
    return result["history"], result["model"]


def _retrain_epochs(out: Path, sets: dict, args: argparse.Namespace, device: torch.device,
                    epochs: int):
    from nas.presets import merge, retrain_preset
    from nas.train import DistributedContext, RetrainConfig, evaluate_segmentation, make_loader, run_retrain
    from supernet import from_genotype

    context = DistributedContext(device=device)
    model = from_genotype(_genotype(args)).to(device)
    values = merge(retrain_preset("dsb2018"), dict(epochs=epochs, batch_size=args.batch,
                                                   image_size=args.size, num_workers=0))
    config = RetrainConfig(dataset="dsb2018", model="genotype", progress=False, **values)
    loader = make_loader(sets["val"], args.batch, shuffle=False, num_workers=0)
    loss = torch.nn.BCEWithLogitsLoss()
    result = run_retrain(model, config, sets["train"], out,
                         lambda net: evaluate_segmentation(net, loader, loss, device, context),
                         context=context)
    return result["history"], result["model"]


def _genotype(args: argparse.Namespace):
    import ops
    from supernet.genotype import Genotype

    cell = ((("sep_conv_3x3", 0), ("ghost", 1)), (("skip_connect", 0), ("sk", 2)),
            (("dil_conv_3x3", 1), ("max_pool_3x3", 3)), (("shuffle_conv_3x3", 4), ("ghost", 0)))
    layout = dict(zip(("encoder", "middle", "decoder"), map(int, args.layout.split("/"))))
    types = tuple(k for k in layout for _ in range(layout[k]))
    return Genotype("unet", {k: cell for k in layout}, types, layout, args.channels, 3, 1,
                    primitives=ops.SEARCH_OPS)


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


def main(argv: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
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
    parser.add_argument("--no-nodes", action="store_true",
                        help="skip 1 node x N processes against N nodes x 1 process")
    parser.add_argument("--no-checkpoints", action="store_true",
                        help="skip the checkpoint write time against the epoch time")
    add_publish_arguments(parser)
    parser.add_argument("--torchrun-worker", choices=["search", "retrain"], help=argparse.SUPPRESS)
    parser.add_argument("--results", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torchrun_worker:
        _torchrun_worker(args)
        return {}
    rows, node_rows, n = [], [], args.processes
    for kind in args.kinds:
        one = args.batch / measure(kind, 1, args)
        if not args.no_nodes:  # sync BN, as the loops run
            node = n * args.batch / measure_torchrun(kind, 1, n, args)
            nodes = n * args.batch / measure_torchrun(kind, n, 1, args)
            node_rows.append({"step": kind, "1 process (img/s)": round(one, 2),
                              f"1 node x {n} (img/s)": round(node, 2),
                              f"{n} nodes x 1 (img/s)": round(nodes, 2),
                              f"1 node x {n} / 1 process": round(node / one, 3),
                              f"{n} nodes / 1 node": round(nodes / node, 3)})
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
    frames = {"processes": frame, "nodes": pd.DataFrame(node_rows)}
    if not args.no_checkpoints:
        frames["checkpoints"] = checkpoint_costs(args)
        print("done: checkpoints", file=sys.stderr)
    from nas.train.distributed import resolve_device

    device = resolve_device(args.device)
    command = command_line("bench.ddp", argv)
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
    if node_rows:
        section += "\n".join([
            "", f"Nodes: the same step (sync BN) under torchrun's c10d rendezvous on 127.0.0.1, "
            f"as 1 node x {n} processes and as {n} nodes x 1 process ({n} torchrun launches on "
            "this machine: the multi-node code path, loopback instead of a network).", "",
            frames["nodes"].to_markdown(index=False), ""])
    if "checkpoints" in frames:
        section += "\n".join([
            "", f"Checkpoints: the real search and retrain loops, one process of "
            f"{args.threads_per_process} thread(s), on the sample data (dsb2018, "
            f"{args.size}x{args.size}, batch {args.batch}), 2 epochs; epoch = "
            "its training and validation time as log.csv counts it, write = median time to "
            "write checkpoint.pt atomically (temp file, fsync, rename).", "",
            frames["checkpoints"].to_markdown(index=False), ""])
    publish(section, args.no_write, args.output)
    return frames


if __name__ == "__main__":
    main()
