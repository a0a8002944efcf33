"""What every training loop shares at run time: seeding, backends, precision, batches and the
non-finite loss check."""
from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names where, and the last good checkpoint
    is left in place."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, reproducible seed per epoch, so a run resumed at an epoch boundary draws
    exactly the numbers an uninterrupted run draws."""
    return (seed * 1_000_003 + epoch * 7919) % 2**31


def rank_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one rank's per-sample randomness (drop-path masks, dropout, VAE noise) in
    one epoch: each rank draws its own masks, as a single process draws one per sample, and a
    run is reproducible for a fixed seed and world size."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]) % 2**31


def start_epoch_randomness(seed: int, epoch: int, loaders: Iterable[Any], rank: int = 0) -> None:
    """Reseed every RNG for ``epoch``: the global ones per rank (:func:`rank_seed`), each
    loader's shuffling and augmentation from (seed, epoch) alone, so every rank agrees on
    which items each rank gets and how each item is augmented."""
    base = epoch_seed(seed, epoch)
    seed_everything(rank_seed(seed, epoch, rank))
    for offset, loader in enumerate(loaders):
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        dataset = getattr(loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):  # per-item augmentation seeds
            dataset.set_epoch(epoch)
        generator = getattr(loader, "generator", None)
        if generator is not None:
            generator.manual_seed(base + 101 * (offset + 1))


def configure_backends(device: torch.device, deterministic: bool = False) -> None:
    """cuDNN autotuning for fixed-shape training, or bit-reproducible kernels on request
    (slower: no autotuning, deterministic algorithms only)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def autotuning_note(device: torch.device, deterministic: bool = False) -> str:
    """What a run's first progress line says about cuDNN autotuning: on CUDA without
    ``--deterministic`` (:func:`configure_backends`) the first steps time every new convolution
    shape, which took most of a 29 s first search step on an H200 (issue 26)."""
    if device.type != "cuda":
        return ""
    if deterministic:
        return "; cuDNN autotuning off (--deterministic)"
    return ("; cuDNN autotuning: the first steps time each new convolution shape and are slow "
            "(--deterministic skips it)")


def to_channels_last(module: nn.Module, spatial_dims: int) -> nn.Module:
    """NHWC / NDHWC weights: faster convs for bf16 on tensor cores."""
    return module.to(memory_format=torch.channels_last if spatial_dims == 2
                     else torch.channels_last_3d)


#: What ``--precision auto`` picks, and the measurement behind it (issue 26: the project's first
#: GPU run, NVIDIA H200, torch 2.11, CUDA 13, one run each). Auto never picks a precision a
#: device run measured slower than fp32, and picks bf16 nowhere a run has not backed it:
#: - the 2D search (supernet of depthwise/grouped convs): with bf16 autocast the first step of
#:   ``search.py --dataset dsb2018`` had not finished after 60 s, against 29 s in fp32 (then
#:   0.6-1 s per step); ``bench.search_step``'s fused step took 514 ms in fp32 and did not finish
#:   7 steps in 45 s in bf16;
#: - grouped-convolution networks (MFS-Net, DMFNet, MFNet, MF-Res2Net; searched networks' sep,
#:   dil, ghost, sk and shuffle ops): ``bench.models3d`` measured bf16 whole-volume inference
#:   1.2-1.6x slower than fp32 for every one of them; their training runs the same convs plus
#:   their backward, so it stays fp32 too until a device run of bench.models3d says otherwise;
#: - 3D searches: the same supernet ops as the 2D search, so fp32 (bf16 ran, 37 s for 2 sample
#:   epochs, but was never timed against fp32).
#: bf16 stays for networks whose convolutions are all dense (unet2d, unet3d, vae_unet), where
#: tensor cores serve bf16 and nothing measured the contrary; every precision stays by flag.
AUTO_PRECISION_RULE = ("auto: fp32 for searches and for networks with grouped or depthwise "
                       "convolutions (bf16 measured slower on CUDA, issue 26); bf16 on CUDA only "
                       "for networks of dense convolutions; fp32 on CPU")


def uses_grouped_convolutions(module: nn.Module) -> bool:
    """Whether any convolution of ``module`` is grouped or depthwise (``groups > 1``)."""
    return any(isinstance(layer, nn.modules.conv._ConvNd) and layer.groups > 1
               for layer in module.modules())


def resolve_precision(precision: str, device: torch.device,
                      network: nn.Module | None = None) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means full fp32.

    ``auto`` (:data:`AUTO_PRECISION_RULE`): bf16 only on a CUDA device that supports it and
    only for a given ``network`` without grouped convolutions; fp32 for everything else: every
    search (callers pass no network), grouped-convolution networks, CPU (where bf16 autocast is
    usually slower).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "auto":
        if (device.type == "cuda" and network is not None
                and not uses_grouped_convolutions(network) and torch.cuda.is_bf16_supported()):
            return torch.bfloat16
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 autocast needs a CUDA device; use bf16 or fp32 on CPU")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None, cache: bool = True
             ) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device`` (None: nothing). ``cache=False`` inside a step captured
    as a CUDA graph: the graph must not keep weight casts made outside its capture."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache)


def unpack_batch(batch: Any, device: torch.device, channels_last: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, label) of a data item dict (or a pair) moved to ``device``."""
    if isinstance(batch, dict):
        image, label = batch["image"], batch["label"]
    else:
        image, label = batch[0], batch[1]
    image = image.to(device, non_blocking=True)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last if image.dim() == 4
                                 else torch.channels_last_3d)
    return image, label.to(device, non_blocking=True)


def check_finite(loss: torch.Tensor, epoch: int, step: int, phase: str,
                 checkpoint: Path | None = None) -> None:
    """Raise :class:`NonFiniteLossError` naming the epoch, step and phase on NaN/inf."""
    if not bool(torch.isfinite(loss.detach()).all()):
        if checkpoint is not None and Path(checkpoint).is_file():
            kept = f"; the last good checkpoint is kept at {checkpoint} (--resume continues it)"
        else:
            kept = "; no checkpoint was written yet"
        raise NonFiniteLossError(
            f"non-finite {phase} loss ({loss.detach().float().item()}) at epoch {epoch} step "
            f"{step}{kept}. The data was read finite; lower the learning rate or use "
            "--precision fp32.")


def check_finite_losses(losses: Sequence[tuple[str, torch.Tensor]], epoch: int, step: int,
                        checkpoint: Path | None = None) -> None:
    """:func:`check_finite` of each (phase, loss) in order, reading the device once when all are
    finite (each read is a host synchronisation in the step loop)."""
    if bool(torch.isfinite(torch.stack([loss.detach().float() for _, loss in losses])).all()):
        return
    for phase, loss in losses:
        check_finite(loss, epoch, step, phase, checkpoint)


def cycle(loader: Iterable) -> Iterator:
    """Endless iteration over a loader (re-iterating it, so shuffling continues)."""
    while True:
        yielded = False
        for item in loader:
            yielded = True
            yield item
        if not yielded:
            raise ValueError("cannot cycle over an empty loader")
