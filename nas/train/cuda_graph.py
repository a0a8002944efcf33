"""A fixed-shape training step replayed as one CUDA graph: one launch for its thousands of
small kernels (the search step is launch-bound on a GPU: issue 26).

``GraphedStep(step)`` wraps a function that does a whole step on the device (forwards,
backwards, optimizer steps) and returns tensors. On CUDA the first ``warmup`` calls run it
eagerly on a side stream (real steps: lazy optimizer state, cuDNN autotuning and cuBLAS
workspaces settle there, as ``torch.cuda.graphs`` requires), the next call captures it into a
:class:`torch.cuda.CUDAGraph` and every later call copies its inputs into the captured ones and
replays. Anywhere else (CPU) it simply calls ``step``: the same results, no graph.

What the step must respect to be captured (``torch.cuda.graphs``' rules):
- fixed shapes and dtypes of its inputs (a last, smaller batch: call ``step`` eagerly, or drop
  it, as the search does with ``drop_last``);
- no host synchronisation inside (``.item()``, ``.cpu()``, Python branches on tensor values,
  ``clip_grad_norm_(error_if_nonfinite=True)``); read the returned losses after the call;
- optimizers that keep step counts on the device: ``Adam(..., capturable=True)``; a learning
  rate or any other Python number the step reads is baked into the graph: pass it as ``key``
  (``step(..., key=(epoch,))``) so a new value captures a new graph;
- ``set_to_none`` gradients at the start of the step (the captured backward then owns them);
- ``torch.autocast(..., cache_enabled=False)`` around forwards inside the step;
- host-side structure that changes the kernels (pruned ops after progressive shrinking, a
  different set of active ops) is part of ``key`` too;
- Python side effects of ``step`` (counters, lists) happen once, at the capture, not per replay.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Sequence

import torch


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


class GraphedStep:
    """``GraphedStep(step, warmup=3)(*inputs, key=...)``: ``step(*inputs)`` as a replayed CUDA
    graph on CUDA inputs (see the module's rules), a plain call otherwise. Returns what
    ``step`` returns; on replay those are the captured output tensors, overwritten by each
    replay (clone what must outlive the next call)."""

    def __init__(self, step: Callable[..., Any], warmup: int = 3) -> None:
        if warmup < 1:
            raise ValueError("a CUDA graph needs at least one eager warm-up call")
        self.step = step
        self.warmup = warmup
        self.calls = 0
        self.captures = 0
        self.graph: Any = None
        self._key: Hashable = None
        self._static: list[torch.Tensor] = []
        self._outputs: Any = None

    @property
    def graphed(self) -> bool:
        """Whether the last call replayed a captured graph."""
        return self.graph is not None

    def __call__(self, *inputs: torch.Tensor, key: Hashable = None) -> Any:
        self.calls += 1
        if not inputs or not all(isinstance(t, torch.Tensor) and t.is_cuda for t in inputs):
            return self.step(*inputs)
        if self.graph is not None and key != self._key:
            self.graph = None  # a new learning rate, other active ops: capture anew
        if self.graph is None and self.calls <= self.warmup:
            return self._eager_on_side_stream(inputs)
        if self.graph is None:
            self._capture(inputs, key)
        for static, value in zip(self._static, inputs):
            static.copy_(value, non_blocking=True)
        self.graph.replay()
        return self._outputs

    def _eager_on_side_stream(self, inputs: Sequence[torch.Tensor]) -> Any:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            result = self.step(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        return result

    def _capture(self, inputs: Sequence[torch.Tensor], key: Hashable) -> None:
        self._static = [t.detach().clone() for t in inputs]
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        with torch.cuda.graph(graph):
            self._outputs = self.step(*self._static)
        self.graph, self._key = graph, key
        self.captures += 1
        if not _tensors(self._outputs):
            raise ValueError("a graphed step must return the tensors it computes (its losses)")
