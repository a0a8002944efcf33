"""Name registry of channel-preserving ops (timm's ``register_model`` pattern).

A builder is registered once under a unique name and called through :func:`build` with one
shared signature ``(channels, stride, spatial_dims, norm, act, **kwargs)``, so mixed ops,
cells and fixed networks all construct ops the same way.
"""
from __future__ import annotations

import fnmatch
from typing import Callable

from torch import nn

from .layers import LayerSpec, check_spatial_dims, unknown_name_error

OpBuilder = Callable[..., nn.Module]
_REGISTRY: dict[str, OpBuilder] = {}


def register(name: str) -> Callable[[OpBuilder], OpBuilder]:
    """Decorator filing a builder under ``name``; a second builder for a name is an error."""

    def decorator(builder: OpBuilder) -> OpBuilder:
        if name in _REGISTRY:
            raise ValueError(f"op {name!r} is already registered (by {_REGISTRY[name]!r})")
        _REGISTRY[name] = builder
        return builder

    return decorator


def list_ops(pattern: str = "*") -> list[str]:
    """Registered op names matching a shell-style pattern, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def build(name: str, channels: int, stride: int = 1, spatial_dims: int = 2,
          norm: LayerSpec = "batch", act: LayerSpec = "relu", **kwargs) -> nn.Module:
    """Build the op ``name`` mapping ``channels`` to ``channels`` at ``stride`` 1 or 2.

    Stride 2 halves every spatial size (rounding up), stride 1 keeps it.
    """
    if name not in _REGISTRY:
        raise unknown_name_error("op", name, list(_REGISTRY))
    if stride not in (1, 2):
        raise ValueError(f"op {name!r}: stride must be 1 or 2, got {stride!r}")
    if channels < 1:
        raise ValueError(f"op {name!r}: channels must be positive, got {channels}")
    check_spatial_dims(spatial_dims)
    return _REGISTRY[name](channels, stride=stride, spatial_dims=spatial_dims, norm=norm, act=act,
                           **kwargs)


# Building units of the hand-designed networks: (in_channels -> out_channels) blocks, a registry
# of their own because they change width and so do not share the ops' signature.
UnitBuilder = Callable[..., nn.Module]
_UNITS: dict[str, UnitBuilder] = {}


def register_unit(name: str) -> Callable[[UnitBuilder], UnitBuilder]:
    """Decorator filing a unit class or builder under ``name``; duplicates are an error."""

    def decorator(builder: UnitBuilder) -> UnitBuilder:
        if name in _UNITS:
            raise ValueError(f"unit {name!r} is already registered (by {_UNITS[name]!r})")
        _UNITS[name] = builder
        return builder

    return decorator


def list_units(pattern: str = "*") -> list[str]:
    """Registered unit names matching a shell-style pattern, sorted."""
    return sorted(n for n in _UNITS if fnmatch.fnmatch(n, pattern))


def build_unit(name: str, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1,
               **kwargs) -> nn.Module:
    """Build the unit ``name`` mapping ``in_channels`` to ``out_channels`` at ``stride``."""
    if name not in _UNITS:
        raise unknown_name_error("unit", name, list(_UNITS))
    if stride not in (1, 2):
        raise ValueError(f"unit {name!r}: stride must be 1 or 2, got {stride!r}")
    check_spatial_dims(spatial_dims)
    return _UNITS[name](spatial_dims, in_channels, out_channels, stride=stride, **kwargs)
