"""Counting what a step dispatches: aten ops (a CPU-measurable proxy for the number of kernels a
GPU launches) and dtype casts, per op name, without running on the device.

A view (``view``, ``transpose``, ``select``...), ``detach`` or a bare allocation launches no
kernel; every other aten op launches at least one on CUDA (cuDNN convolutions and batch norms
sometimes a few). So :attr:`OpCounter.kernels` is a lower bound of a step's kernel launches, and
its ratio between two implementations of one step is what launch-bound time follows.
"""
from __future__ import annotations

import collections
from typing import Any, Callable

from torch.utils._python_dispatch import TorchDispatchMode

#: ops that only make a tensor's metadata or allocate it: no kernel
NO_KERNEL = frozenset({
    "aten.detach", "aten.empty", "aten.empty_like", "aten.empty_strided", "aten.new_empty",
    "aten.new_empty_strided", "aten._unsafe_view", "aten.lift_fresh", "aten.alias",
    "aten._reshape_alias", "aten.set_", "aten.resize_", "aten.sym_size", "aten.sym_stride",
    "aten.sym_numel", "aten.sym_storage_offset", "aten.is_same_size", "aten.size",
    "aten.stride", "aten.dim", "aten.is_contiguous", "aten.numel"})
#: the dtype conversions autocast inserts (``to``/``type_as`` dispatch to ``_to_copy``)
CASTS = frozenset({"aten._to_copy", "aten.to", "aten._autocast_to_reduced_precision",
                   "aten._autocast_to_full_precision"})


def _launches_kernel(func: Any) -> bool:
    name = str(func.overloadpacket)
    return not getattr(func, "is_view", False) and name not in NO_KERNEL


class OpCounter(TorchDispatchMode):
    """Inside ``with OpCounter() as counter:`` every aten op that launches a kernel is counted
    by name in ``counter.kernel_ops`` (decided per overload: ``slice.Tensor`` is a view,
    ``slice.str`` is not), and each dtype conversion under the kernel that follows it
    (``counter.casts_before``: what the cast was made for)."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel_ops: collections.Counter[str] = collections.Counter()
        self.casts_before: collections.Counter[str] = collections.Counter()
        self._pending_casts = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if _launches_kernel(func):
            self.kernel_ops[name] += 1
            if name in CASTS:
                self._pending_casts += 1
            elif self._pending_casts:
                self.casts_before[name] += self._pending_casts
                self._pending_casts = 0
        return func(*args, **(kwargs or {}))

    @property
    def kernels(self) -> int:
        """Ops that launch at least one kernel (views, detaches and allocations excluded)."""
        return sum(self.kernel_ops.values())

    @property
    def casts(self) -> int:
        return sum(self.kernel_ops[name] for name in CASTS)


def count_ops(run: Callable[[], Any]) -> OpCounter:
    """Run ``run()`` once under an :class:`OpCounter` and return it."""
    with OpCounter() as counter:
        run()
    return counter
