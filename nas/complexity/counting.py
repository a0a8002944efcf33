"""Complexity accounting: parameters, multiply-accumulates, latency and memory of any module.

Counting is analytic per layer type, from forward hooks on the leaf modules, so it works for
every op and network in 2D and 3D. Conventions (the papers mostly leave them implicit):

- ``params``: every parameter (conv weights, biases, norm weight/bias, learned scalars);
  norm running statistics are buffers and not counted.
- ``macs``: multiply-accumulates of convolutions, transposed convolutions and linear layers,
  biases excluded. The seed papers call this number "FLOPs" (one op per multiply-add), and so
  do we: ``flops == macs`` unless a convention below is asked for.
- ``norm_elements`` / ``upsample_elements``: elements entering normalisation layers and leaving
  interpolating upsamplers. thop 0.0.31 (MFS-Net's table) counts ``macs + 2 * norm_elements``;
  DMFNet's README counts ``macs + 2 * norm_elements + upsample_elements``
  (:func:`flops_by_convention`).

This module imports nothing of the project, so it can be used alone on any ``nn.Module``; the
papers' tables that need the op library and the networks are in ``paper_tables``.
"""
from __future__ import annotations

import math
import statistics
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd
from torch.nn.modules.instancenorm import _InstanceNorm

_NORMS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)
FLOP_CONVENTIONS = ("macs", "thop_0.0.31", "dmfnet")


def layer_macs(module: nn.Module, inputs: tuple, output: Any) -> int:
    """Multiply-accumulates of one leaf layer for one forward call (0 for non-MAC layers)."""
    if isinstance(module, _ConvTransposeNd):
        # Every input element is spread over (out/groups) x kernel outputs.
        kernel = math.prod(module.kernel_size)
        return inputs[0].numel() * (module.out_channels // module.groups) * kernel
    if isinstance(module, _ConvNd):
        kernel = math.prod(module.kernel_size)
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def _tensor_shape(value: Any) -> tuple[int, ...]:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return tuple(value[0].shape)
    return ()


@contextmanager
def _counting_hooks(module: nn.Module, records: list[dict]) -> Iterator[None]:
    handles = []
    for name, layer in module.named_modules():
        if next(layer.children(), None) is not None:
            continue

        def hook(layer: nn.Module, inputs: tuple, output: Any, name: str = name) -> None:
            first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            records.append({
                "name": name or type(layer).__name__,
                "type": type(layer).__name__,
                "output_shape": _tensor_shape(output),
                "macs": layer_macs(layer, inputs, output),
                "norm_elements": first.numel() if isinstance(layer, _NORMS) and first is not None
                else 0,
                "upsample_elements": output.numel() if isinstance(layer, nn.Upsample)
                and layer.mode != "nearest" else 0,
            })

        handles.append(layer.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (not buffers) of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _example_input(module: nn.Module, input_shape: Sequence[int], device, dtype) -> torch.Tensor:
    """A random input where the module's parameters are, in their dtype unless ``dtype`` says."""
    first = next(module.parameters(), None)
    device = device or (first.device if first is not None else "cpu")
    dtype = dtype or (first.dtype if first is not None and first.is_floating_point()
                      else torch.float32)
    return torch.randn(*input_shape, device=device, dtype=dtype)


def profile_layers(module: nn.Module, input_shape: Sequence[int], *, device=None,
                   dtype: torch.dtype | None = None, training: bool = False) -> list[dict]:
    """One record per leaf-layer call: name, type, output shape, macs, norm/upsample elements,
    and the layer's own parameter count (shared layers called twice appear twice, params once).

    ``input_shape`` includes the batch axis; counts scale with it, so pass batch 1 for per-image
    figures. The module is run in eval mode (``training=True``: train mode, for branches that
    only run in training, such as a VAE regulariser) under ``torch.no_grad`` and restored
    afterwards.
    """
    records: list[dict] = []
    was_training = module.training
    module.train(training)
    try:
        with torch.no_grad(), _counting_hooks(module, records):
            module(_example_input(module, input_shape, device, dtype))
    finally:
        module.train(was_training)
    seen: set[str] = set()
    layers = dict(module.named_modules())
    for record in records:
        layer = layers.get(record["name"])
        own = sum(p.numel() for p in layer.parameters(recurse=False)) if layer is not None else 0
        record["params"] = 0 if record["name"] in seen else own
        seen.add(record["name"])
    return records


def profile(module: nn.Module, input_shape: Sequence[int], *, device=None,
            dtype: torch.dtype | None = None, training: bool = False) -> dict[str, int]:
    """Totals for one forward pass of ``module`` on a random input of ``input_shape``
    (in eval mode unless ``training``).

    Returns ``params``, ``macs``, ``flops`` (= macs, the seed papers' convention),
    ``norm_elements`` and ``upsample_elements``.
    """
    records = profile_layers(module, input_shape, device=device, dtype=dtype, training=training)
    macs = sum(r["macs"] for r in records)
    return {
        "params": count_parameters(module),
        "macs": macs,
        "flops": macs,
        "norm_elements": sum(r["norm_elements"] for r in records),
        "upsample_elements": sum(r["upsample_elements"] for r in records),
    }


def flops_by_convention(counts: dict[str, int], convention: str = "macs") -> int:
    """FLOPs as a given paper counts them, from :func:`profile`'s totals."""
    if convention == "macs":
        return counts["macs"]
    if convention == "thop_0.0.31":
        return counts["macs"] + 2 * counts["norm_elements"]
    if convention == "dmfnet":
        return counts["macs"] + 2 * counts["norm_elements"] + counts["upsample_elements"]
    raise ValueError(f"unknown FLOPs convention {convention!r}; valid: {FLOP_CONVENTIONS}")


def summarize_layers(records: list[dict], depth: int = 1) -> "pandas.DataFrame":  # noqa: F821
    """Group :func:`profile_layers` records by the first ``depth`` parts of the layer name
    (e.g. depth 1: per top-level block), summing params and macs, in order of first call."""
    import pandas as pd

    frame = pd.DataFrame(records)
    frame["group"] = frame["name"].map(lambda n: ".".join(n.split(".")[:depth]))
    grouped = frame.groupby("group", sort=False)[["params", "macs"]].sum().reset_index()
    return grouped


def measure_latency(module: nn.Module, input_shape: Sequence[int], *, device=None,
                    dtype: torch.dtype | None = None, warmup: int = 2, repeats: int = 10,
                    backward: bool = False, autocast_dtype: torch.dtype | None = None
                    ) -> dict[str, float]:
    """Wall time of a forward (and optionally backward) pass in milliseconds: median, mean, std.

    On CUDA the device is synchronised around each call, so queued kernels are counted.
    """
    x = _example_input(module, input_shape, device, dtype)
    cuda = x.device.type == "cuda"
    was_training = module.training
    module.train(backward)
    times = []
    try:
        for step in range(warmup + repeats):
            if cuda:
                torch.cuda.synchronize(x.device)
            start = time.perf_counter()
            with torch.autocast(x.device.type, dtype=autocast_dtype,
                                enabled=autocast_dtype is not None):
                if backward:
                    output = module(x)
                    output = output[0] if isinstance(output, (tuple, list)) else output
                    output.float().mean().backward()
                else:
                    with torch.inference_mode():
                        module(x)
            if cuda:
                torch.cuda.synchronize(x.device)
            if step >= warmup:
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        module.train(was_training)
        module.zero_grad(set_to_none=True)
    return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times),
            "std_ms": statistics.pstdev(times)}


def activation_memory(module: nn.Module, input_shape: Sequence[int], *, device=None,
                      dtype: torch.dtype | None = None) -> int:
    """Bytes of the tensors autograd saves for backward in one training forward pass.

    This is the part of training memory that grows with the input, measured exactly on any
    device (each storage counted once); it leaves out parameters, gradients and optimiser state.
    """
    seen: dict[tuple, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        seen[(tensor.device.type, storage.data_ptr())] = storage.nbytes()
        return tensor

    x = _example_input(module, input_shape, device, dtype)
    parameter_storages = {(p.device.type, p.untyped_storage().data_ptr())
                          for p in module.parameters()}
    was_training = module.training
    module.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            module(x.requires_grad_(False))
    finally:
        module.train(was_training)
    return sum(size for key, size in seen.items() if key not in parameter_storages)


def peak_cuda_memory(module: nn.Module, input_shape: Sequence[int], *, device=None,
                     dtype: torch.dtype | None = None, backward: bool = True,
                     autocast_dtype: torch.dtype | None = None) -> int:
    """Peak CUDA bytes allocated during a forward (and backward) pass, above what was held
    before it (parameters already on the device are not counted)."""
    x = _example_input(module, input_shape, device, dtype)
    if x.device.type != "cuda":
        raise ValueError("peak_cuda_memory needs a module on a CUDA device")
    torch.cuda.synchronize(x.device)
    torch.cuda.reset_peak_memory_stats(x.device)
    baseline = torch.cuda.memory_allocated(x.device)
    with torch.autocast("cuda", dtype=autocast_dtype, enabled=autocast_dtype is not None):
        output = module(x)
        output = output[0] if isinstance(output, (tuple, list)) else output
        if backward:
            output.float().mean().backward()
    torch.cuda.synchronize(x.device)
    peak = torch.cuda.max_memory_allocated(x.device) - baseline
    module.zero_grad(set_to_none=True)
    return int(peak)
