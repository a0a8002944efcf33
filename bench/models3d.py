"""Benchmark of the 3D networks against ``unet3d``: train step, memory, whole-volume inference.

Per registered network, in one run (so every figure shares the machine's state):

- train step: forward + backward + Adam step on a ``batch x 4 x size^3`` crop (median ms);
- memory: on CUDA the peak bytes allocated by a forward + backward above the parameters
  (``nas.complexity.peak_cuda_memory``); on CPU the bytes autograd saves for backward
  (``nas.complexity.activation_memory``), the part of training memory that grows with the crop;
- whole volume: ``nas.inference.sliding_window_inference`` over one ``4 x volume`` case with
  ``size^3`` windows (overlap 0.5), probabilities averaged (median seconds per case).

Each figure is also given as a ratio to ``unet3d`` under the same settings. Each row is
printed and appended to BENCHMARKS.md as soon as it is measured (the section heading first);
``--variant-timeout S`` gives each network and precision S seconds, checked between steps and
windows (a row past it says so). On CUDA every
network runs in fp32, bf16 autocast and bf16 autocast + channels_last_3d, and the table
says which is fastest. The section appended to BENCHMARKS.md records the device, date and
command. GPU: ``python -m bench.models3d``; CPU (2 cores, minutes):
``python -m bench.models3d --size 32 --volume 48x48x32``.
"""
from __future__ import annotations

import argparse
import datetime
import platform
from typing import Sequence

import pandas as pd
import torch
from torch import nn

import models
from bench.common import (
    Deadline,
    MarkdownRows,
    TimeLimitExceeded,
    command_line,
    device_description,
    median_seconds,
)
from nas import complexity, inference

REFERENCE = "unet3d"
#: name -> (autocast dtype, channels_last_3d)
PRECISIONS = {
    "fp32": (None, False),
    "bf16": (torch.bfloat16, False),
    "bf16+channels_last": (torch.bfloat16, True),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.models3d", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"networks to run (default: all registered; {REFERENCE} is "
                             f"always added as the reference)")
    parser.add_argument("--size", type=int, default=128, help="training crop / window edge")
    parser.add_argument("--batch", type=int, default=2, help="training batch")
    parser.add_argument("--volume", default="240x240x155", help="whole-volume size, AxBxC")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--sw-batch-size", type=int, default=1)
    parser.add_argument("--tta", action="store_true", help="8-flip test-time augmentation")
    parser.add_argument("--precisions", nargs="+", choices=list(PRECISIONS), default=None,
                        help="default: all three on CUDA, fp32 on CPU")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed train steps")
    parser.add_argument("--volume-repeats", type=int, default=1, help="timed whole volumes")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda if any)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--variant-timeout", type=float, default=None, metavar="S",
                        help="seconds per network and precision, checked between steps")
    parser.add_argument("--output", default="BENCHMARKS.md",
                        help="markdown file the section is appended to")
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args(argv)


def build_network(name: str, size: int, device: torch.device, channels_last: bool) -> nn.Module:
    # the VAE branch's dense layers are sized by the training crop
    kwargs = {"input_size": (size,) * 3} if name == "vae_unet" else {}
    network = models.build(name, **kwargs).to(device)
    if channels_last:
        network = network.to(memory_format=torch.channels_last_3d)
    return network


def training_loss(network: nn.Module, output, x: torch.Tensor,
                  target: torch.Tensor) -> torch.Tensor:
    """A loss of the network's kind (cross-entropy or region BCE, plus the VAE terms)."""
    extra = 0.0
    if isinstance(output, models.VAEOutput):
        extra = (nn.functional.mse_loss(output.reconstruction.float(), x)
                 + 0.1 * (output.mu.square() + output.logvar.exp() - output.logvar - 1).mean())
        output = output.segmentation
    if network.output_activation == "softmax":
        return nn.functional.cross_entropy(output.float(), target) + extra
    return nn.functional.binary_cross_entropy_with_logits(output.float(), target) + extra


def time_train_step(network: nn.Module, batch: int, size: int, device: torch.device,
                    autocast_dtype: torch.dtype | None, channels_last: bool, warmup: int,
                    repeats: int, deadline: Deadline | None = None) -> float:
    """Median seconds of forward + backward + Adam step on a random batch."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 4, size, size, size, generator=generator).to(device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last_3d)
    spatial = (batch, size, size, size)
    if network.output_activation == "softmax":
        target = torch.randint(0, network.num_classes, spatial, generator=generator)
    else:
        target = (torch.rand((batch, network.num_classes) + spatial[1:],
                             generator=generator) > 0.5).float()
    target = target.to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)
    network.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            output = network(x)
        training_loss(network, output, x, target).backward()
        optimizer.step()

    seconds = median_seconds(step, device, warmup, repeats, deadline)
    optimizer.zero_grad(set_to_none=True)
    return seconds


def memory_bytes(network: nn.Module, batch: int, size: int, device: torch.device,
                 autocast_dtype: torch.dtype | None) -> int:
    shape = (batch, 4, size, size, size)
    if device.type == "cuda":
        return complexity.peak_cuda_memory(network, shape, device=device,
                                           autocast_dtype=autocast_dtype)
    return complexity.activation_memory(network, shape, device=device)


def time_whole_volume(network: nn.Module, volume: Sequence[int], roi: int,
                      device: torch.device, autocast_dtype: torch.dtype | None,
                      channels_last: bool, overlap: float, sw_batch_size: int, tta: bool,
                      repeats: int, deadline: Deadline | None = None) -> float:
    """Median seconds to predict one case's probabilities with sliding windows."""
    network.eval()
    activation = ((lambda logits: logits.float().softmax(1))
                  if network.output_activation == "softmax" else
                  (lambda logits: logits.float().sigmoid()))

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        if deadline is not None:  # between windows
            deadline.check("whole volume")
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return activation(network(batch))

    case = torch.randn(1, 4, *volume, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():  # one window first: kernel selection is not part of a case's time
        predictor(case[..., :roi, :roi, :roi].contiguous())

    def run() -> None:
        inference.sliding_window_inference(case, roi, predictor, overlap, sw_batch_size,
                                           tta_flips=tta)

    return median_seconds(run, device, 0, repeats, deadline)


COLUMNS = ["model", "precision", "params_M", "train_step_ms", "train_ratio", "memory_MB",
           "memory_ratio", "volume_s", "volume_ratio", "note"]


def run_benchmark(args: argparse.Namespace, table: MarkdownRows | None = None
                  ) -> tuple[pd.DataFrame, torch.device]:
    """Every network under every precision setting; each row goes to ``table`` as soon as it
    is measured (ratios to unet3d's row of the same precision, measured first)."""
    device = resolve_device(args)
    names = list(args.models or models.list_models())
    names = [REFERENCE] + [name for name in names if name != REFERENCE]
    precisions = args.precisions or (list(PRECISIONS) if device.type == "cuda" else ["fp32"])
    volume = tuple(int(v) for v in args.volume.lower().split("x"))
    rows = []
    for precision in precisions:
        autocast_dtype, channels_last = PRECISIONS[precision]
        reference: dict = {}
        for name in names:
            torch.manual_seed(0)
            deadline = Deadline(args.variant_timeout)
            network = build_network(name, args.size, device, channels_last)
            row = {"model": name, "precision": precision,
                   "params_M": complexity.count_parameters(network) / 1e6, "note": ""}
            try:
                train = time_train_step(network, args.batch, args.size, device, autocast_dtype,
                                        channels_last, args.warmup, args.repeats, deadline)
                row["train_step_ms"] = 1e3 * train
                row["memory_MB"] = memory_bytes(network, args.batch, args.size, device,
                                                autocast_dtype) / 2 ** 20
                row["volume_s"] = time_whole_volume(network, volume, args.size, device,
                                                    autocast_dtype, channels_last, args.overlap,
                                                    args.sw_batch_size, args.tta,
                                                    args.volume_repeats, deadline)
            except TimeLimitExceeded as error:
                row["note"] = str(error)
            if name == REFERENCE:
                reference = row
            for column, ratio in (("train_step_ms", "train_ratio"), ("memory_MB", "memory_ratio"),
                                  ("volume_s", "volume_ratio")):
                mine, theirs = row.get(column), reference.get(column)
                row[ratio] = float("nan") if mine is None or theirs is None else mine / theirs
            rows.append(row)
            if table is not None:
                table.add(row)
            del network
            if device.type == "cuda":
                torch.cuda.empty_cache()
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = float("nan")
    return frame[COLUMNS].round(3), device


def resolve_device(args: argparse.Namespace) -> torch.device:
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def fastest_settings(frame: pd.DataFrame) -> pd.DataFrame:
    """Per network, the precision setting with the fastest train step and whole volume."""
    rows = []
    for name, group in frame.groupby("model", sort=False):
        train = group.loc[group["train_step_ms"].idxmin()]
        whole = group.loc[group["volume_s"].idxmin()]
        rows.append({"model": name, "fastest train": train["precision"],
                     "train_step_ms": train["train_step_ms"],
                     "fastest volume": whole["precision"], "volume_s": whole["volume_s"]})
    return pd.DataFrame(rows)


def section_heading(args: argparse.Namespace, device: torch.device, command: str) -> str:
    memory_kind = ("peak CUDA bytes of forward + backward above the parameters"
                   if device.type == "cuda" else
                   "bytes saved for backward by one training forward (activation_memory)")
    limit = (f" Each network and precision had {args.variant_timeout:g} s."
             if args.variant_timeout else "")
    return "\n".join([
        f"## models3d: 3D networks against {REFERENCE} "
        f"({datetime.date.today().isoformat()}, {device_description(device)})",
        "",
        f"Command: `{command}`  ",
        f"torch {torch.__version__}, Python {platform.python_version()}. Train step: forward + "
        f"backward + Adam on {args.batch} x 4 x {args.size}^3; memory: {memory_kind}; volume: "
        f"one 4 x {args.volume} case, {args.size}^3 windows, overlap {args.overlap}, "
        f"sw_batch_size {args.sw_batch_size}, TTA {'8 flips' if args.tta else 'off'}. Ratios "
        f"are to {REFERENCE} under the same precision setting (below 1: faster / smaller).{limit}"])


def section_footer(frame: pd.DataFrame) -> str:
    """Per network the fastest setting, and MFS-Net's verdict against unet3d."""
    lines = []
    measured = frame.dropna(subset=["train_step_ms", "volume_s"])
    if measured["precision"].nunique() > 1:
        lines += ["Fastest setting per network:", "",
                  fastest_settings(measured).to_markdown(index=False), ""]
    mfs = measured[measured["model"] == "mfsnet"]
    if not mfs.empty:
        best = mfs.loc[mfs["volume_s"].idxmin()]
        reference = measured[(measured["model"] == REFERENCE)
                             & (measured["precision"] == best["precision"])]
        if not reference.empty:
            reference = reference.iloc[0]
            verdict = "at least as fast as" if best["volume_ratio"] <= 1.0 else "slower than"
            lines += [f"MFS-Net per case: {best['volume_s']:.2f} s vs {REFERENCE} "
                      f"{reference['volume_s']:.2f} s ({best['precision']}), ratio "
                      f"{best['volume_ratio']:.2f}: {verdict} {REFERENCE} on this device.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = command_line("bench.models3d", argv).strip()
    device = resolve_device(args)
    table = MarkdownRows(section_heading(args, device, command), COLUMNS, args.no_write,
                         args.output)
    frame, device = run_benchmark(args, table)
    table.close(section_footer(frame))
    return frame


if __name__ == "__main__":
    main()
