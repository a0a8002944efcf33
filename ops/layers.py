"""Dimension-agnostic layer factories: one code path for 2D and 3D.

Every factory takes ``spatial_dims`` (2 or 3) and returns the matching torch layer, in the
style of MONAI's ``Conv[Conv.CONV, spatial_dims]``. Norm and activation layers are given as
JSON-friendly specs: ``"batch"`` or ``("group", {"num_groups": 8})``.
"""
from __future__ import annotations

import difflib
from typing import Any, Sequence, Union

import torch
from torch import nn

LayerSpec = Union[None, str, tuple[str, dict[str, Any]], list]
IntOrTuple = Union[int, Sequence[int]]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_CONV_TRANSPOSE = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_MAX_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG_POOL = {2: nn.AvgPool2d, 3: nn.AvgPool3d}
_ADAPTIVE_AVG_POOL = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE_NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_DROPOUT = {2: nn.Dropout2d, 3: nn.Dropout3d}


def check_spatial_dims(spatial_dims: int) -> int:
    """Return ``spatial_dims`` if it is 2 or 3; anything else is a configuration error."""
    if spatial_dims not in (2, 3) or isinstance(spatial_dims, bool):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    return int(spatial_dims)


def unknown_name_error(kind: str, name: str, valid: Sequence[str]) -> ValueError:
    """A ValueError naming the valid choices and the closest ones to a misspelt name."""
    close = difflib.get_close_matches(str(name), list(valid), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}.{hint} Valid: {', '.join(sorted(valid))}")


def as_tuple(value: IntOrTuple, spatial_dims: int) -> tuple[int, ...]:
    """Broadcast an int to one value per spatial axis; check a sequence has the right length."""
    if isinstance(value, int):
        return (value,) * spatial_dims
    value = tuple(int(v) for v in value)
    if len(value) != spatial_dims:
        raise ValueError(f"expected {spatial_dims} values (one per spatial axis), got {value}")
    return value


def same_padding(kernel_size: IntOrTuple, dilation: IntOrTuple, spatial_dims: int) -> tuple[int, ...]:
    """Padding that keeps the size at stride 1 (and halves it, rounding up, at stride 2)."""
    kernel = as_tuple(kernel_size, spatial_dims)
    dil = as_tuple(dilation, spatial_dims)
    for k in kernel:
        if k % 2 == 0:
            raise ValueError(f"same padding needs odd kernel sizes, got {kernel}")
    return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dil))


def conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrTuple = 3,
    stride: IntOrTuple = 1,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    bias: bool = False,
    padding: IntOrTuple | None = None,
) -> nn.Module:
    """An N-d convolution with 'same' padding by default (no bias: a norm usually follows)."""
    dims = check_spatial_dims(spatial_dims)
    if padding is None:
        padding = same_padding(kernel_size, dilation, dims)
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"channels ({in_channels} -> {out_channels}) must be divisible by groups={groups}"
        )
    return _CONV[dims](
        in_channels, out_channels, kernel_size, stride=stride, padding=padding,
        dilation=dilation, groups=groups, bias=bias,
    )


def conv_transpose(
    spatial_dims: int, in_channels: int, out_channels: int, kernel_size: IntOrTuple = 2,
    stride: IntOrTuple = 2, bias: bool = True,
) -> nn.Module:
    """An N-d transposed convolution (the x2 upsampling of U-shaped decoders by default)."""
    dims = check_spatial_dims(spatial_dims)
    return _CONV_TRANSPOSE[dims](in_channels, out_channels, kernel_size, stride=stride, bias=bias)


def max_pool(spatial_dims: int, kernel_size: IntOrTuple = 2, stride: IntOrTuple | None = None,
             padding: IntOrTuple = 0, ceil_mode: bool = False) -> nn.Module:
    """Max pooling; ``ceil_mode=True`` keeps the last odd row, so a 2x2 pool gives ceil(n / 2)
    like the stride-2 convs do."""
    return _MAX_POOL[check_spatial_dims(spatial_dims)](kernel_size, stride=stride, padding=padding,
                                                       ceil_mode=ceil_mode)


def avg_pool(spatial_dims: int, kernel_size: IntOrTuple = 2, stride: IntOrTuple | None = None,
             padding: IntOrTuple = 0, count_include_pad: bool = False) -> nn.Module:
    return _AVG_POOL[check_spatial_dims(spatial_dims)](
        kernel_size, stride=stride, padding=padding, count_include_pad=count_include_pad)


def global_avg_pool(spatial_dims: int) -> nn.Module:
    return _ADAPTIVE_AVG_POOL[check_spatial_dims(spatial_dims)](1)


def dropout(spatial_dims: int, p: float) -> nn.Module:
    return _DROPOUT[check_spatial_dims(spatial_dims)](p) if p > 0 else nn.Identity()


def upsample(scale_factor: int = 2, spatial_dims: int = 2, mode: str = "linear") -> nn.Module:
    """Interpolating upsampling; ``mode="linear"`` means bilinear in 2D, trilinear in 3D."""
    dims = check_spatial_dims(spatial_dims)
    if mode == "linear":
        mode = "bilinear" if dims == 2 else "trilinear"
    align = False if mode in ("bilinear", "trilinear") else None
    return nn.Upsample(scale_factor=scale_factor, mode=mode, align_corners=align)


def _split_spec(spec: LayerSpec) -> tuple[str | None, dict[str, Any]]:
    if spec is None:
        return None, {}
    if isinstance(spec, str):
        return spec.lower(), {}
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], dict):
        return str(spec[0]).lower(), dict(spec[1])
    raise ValueError(f"a layer spec is a name or (name, {{kwargs}}), got {spec!r}")


NORM_NAMES = ("batch", "instance", "group", "syncbatch", "none")


def norm_layer(spec: LayerSpec, spatial_dims: int, channels: int) -> nn.Module:
    """Normalisation layer from a spec: batch, instance, group, syncbatch or none.

    Every norm is affine unless ``{"affine": False}`` is given (DARTS' search cells use
    affine-free BN); instance norm is affine too, as in nnU-Net. Group norm uses 8 groups by
    default (Myronenko), or fewer when the channel count is smaller.
    """
    dims = check_spatial_dims(spatial_dims)
    name, kwargs = _split_spec(spec)
    if name in (None, "none", "identity"):
        return nn.Identity()
    affine = kwargs.pop("affine", True)
    if name == "batch":
        return _BATCH_NORM[dims](channels, affine=affine, **kwargs)
    if name == "syncbatch":
        from .sync_batchnorm import SyncBatchNorm  # works on CPU (gloo) and CUDA alike

        return SyncBatchNorm(channels, affine=affine, **kwargs)
    if name == "instance":
        return _INSTANCE_NORM[dims](channels, affine=affine, **kwargs)
    if name == "group":
        groups = kwargs.pop("num_groups", min(8, channels))
        if channels % groups:
            raise ValueError(f"group norm: {channels} channels not divisible by {groups} groups")
        return nn.GroupNorm(groups, channels, affine=affine, **kwargs)
    raise unknown_name_error("norm", name, NORM_NAMES)


_ACTIVATIONS = {
    "relu": nn.ReLU, "leakyrelu": nn.LeakyReLU, "prelu": nn.PReLU, "elu": nn.ELU,
    "gelu": nn.GELU, "silu": nn.SiLU, "swish": nn.SiLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
}
ACT_NAMES = tuple(_ACTIVATIONS) + ("none",)


def act_layer(spec: LayerSpec = "relu") -> nn.Module:
    """Activation layer from a spec. Never in-place: search-op inputs feed several ops at once."""
    name, kwargs = _split_spec(spec)
    if name in (None, "none", "identity"):
        return nn.Identity()
    if name not in _ACTIVATIONS:
        raise unknown_name_error("activation", name, ACT_NAMES)
    return _ACTIVATIONS[name](**kwargs)


class NormActConv(nn.Sequential):
    """Pre-activation convolution: norm -> activation -> conv (the MF/DMF units' block)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 kernel_size: IntOrTuple = 3, stride: IntOrTuple = 1, dilation: IntOrTuple = 1,
                 groups: int = 1, norm: LayerSpec = "batch", act: LayerSpec = "relu",
                 padding: IntOrTuple | None = None) -> None:
        super().__init__(
            norm_layer(norm, spatial_dims, in_channels),
            act_layer(act),
            conv(spatial_dims, in_channels, out_channels, kernel_size, stride, dilation, groups,
                 padding=padding),
        )


class ConvNormAct(nn.Sequential):
    """Post-activation convolution: conv -> norm -> activation (``act=None`` leaves it out)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 kernel_size: IntOrTuple = 3, stride: IntOrTuple = 1, dilation: IntOrTuple = 1,
                 groups: int = 1, norm: LayerSpec = "batch", act: LayerSpec = "relu") -> None:
        super().__init__(
            conv(spatial_dims, in_channels, out_channels, kernel_size, stride, dilation, groups),
            norm_layer(norm, spatial_dims, out_channels),
            act_layer(act),
        )


def pad_to_match(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Zero-pad (or crop) ``x``'s spatial axes at the end to ``reference``'s size.

    Decoders of odd-sized inputs produce one voxel less after a x2 upsampling than the skip
    they are concatenated with; padding keeps any input size valid.
    """
    diffs = [r - s for s, r in zip(x.shape[2:], reference.shape[2:])]
    if not any(diffs):
        return x
    pad: list[int] = []
    for d in reversed(diffs):
        pad += [0, d]
    return nn.functional.pad(x, pad)
