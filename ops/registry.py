"""Name registries (timm's ``register_model`` pattern), and the op and unit registries.

:class:`Registry` files each builder once under a unique name; ``build`` looks it up with an
error that names the valid choices. The op library, the networks (``models``) and the losses
(``nas.losses``) each keep one. Search ops share one builder signature
``(channels, stride, spatial_dims, norm, act)``, so mixed ops, cells and fixed networks all
construct ops the same way.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Callable, Generic, Iterator, TypeVar

from torch import nn

from .layers import LayerSpec, check_spatial_dims, unknown_name_error

Entry = TypeVar("Entry")


class Registry(Mapping, Generic[Entry]):
    """A read-only mapping name -> builder, filled through the :meth:`register` decorator."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str) -> Callable[[Entry], Entry]:
        """Decorator filing a builder under ``name``; a second one for a name is an error."""

        def decorator(builder: Entry) -> Entry:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered (by "
                                 f"{self._entries[name]!r})")
            self._entries[name] = builder
            return builder

        return decorator

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style pattern, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def lookup(self, name: str) -> Entry:
        """The builder of ``name``; an unknown name lists the valid ones and close matches."""
        if name not in self._entries:
            raise unknown_name_error(self.kind, name, list(self._entries))
        return self._entries[name]

    def __getitem__(self, name: str) -> Entry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


OpBuilder = Callable[..., nn.Module]
OPS: Registry[OpBuilder] = Registry("op")
UNITS: Registry[OpBuilder] = Registry("unit")
register = OPS.register
list_ops = OPS.names
#: Building units of the hand-designed networks: (in_channels -> out_channels) blocks, in a
#: registry of their own because they change width and so do not share the ops' signature.
register_unit = UNITS.register
list_units = UNITS.names


def build(name: str, channels: int, stride: int = 1, spatial_dims: int = 2,
          norm: LayerSpec = "batch", act: LayerSpec = "relu", **kwargs) -> nn.Module:
    """Build the op ``name`` mapping ``channels`` to ``channels`` at ``stride`` 1 or 2.

    Stride 2 halves every spatial size (rounding up), stride 1 keeps it.
    """
    builder = OPS.lookup(name)
    if stride not in (1, 2):
        raise ValueError(f"op {name!r}: stride must be 1 or 2, got {stride!r}")
    if channels < 1:
        raise ValueError(f"op {name!r}: channels must be positive, got {channels}")
    check_spatial_dims(spatial_dims)
    return builder(channels, stride=stride, spatial_dims=spatial_dims, norm=norm, act=act,
                   **kwargs)


def build_unit(name: str, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1,
               **kwargs) -> nn.Module:
    """Build the unit ``name`` mapping ``in_channels`` to ``out_channels`` at ``stride``."""
    builder = UNITS.lookup(name)
    if stride not in (1, 2):
        raise ValueError(f"unit {name!r}: stride must be 1 or 2, got {stride!r}")
    check_spatial_dims(spatial_dims)
    return builder(spatial_dims, in_channels, out_channels, stride=stride, **kwargs)
