"""Architecture parameters of a supernet: alphas (op weights) and betas (edge weights) per key.

Alphas are named ``nn.Parameter``s (``alphas.encoder`` ...), so they live in the state dict and
resume with it; a boolean op mask per key (a buffer too) removes pruned ops: their alpha is set
to -inf before the softmax, so their weight is exactly zero and the mixed op skips them.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Iterator, Sequence

import torch
import torch.utils.checkpoint
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .cells import edges_into


class ArchitectureParameters(nn.Module):
    """Alphas of shape (edges, ops) per key, optional betas of shape (edges,) per key
    (PC-DARTS edge normalisation: softmax over the edges entering each node)."""

    def __init__(self, keys: Sequence[str], nodes: int, edges: int, primitives: Sequence[str],
                 edge_normalization: bool = False, init_scale: float = 1e-3) -> None:
        super().__init__()
        self.keys = tuple(keys)
        self.nodes = nodes
        self.primitives = tuple(primitives)
        self.alphas = nn.ParameterDict({
            key: nn.Parameter(init_scale * torch.randn(edges, len(primitives))) for key in keys})
        self.betas = nn.ParameterDict({
            key: nn.Parameter(init_scale * torch.randn(edges)) for key in keys
        }) if edge_normalization else None
        for key in keys:
            self.register_buffer(f"op_mask_{key}", torch.ones(edges, len(primitives),
                                                              dtype=torch.bool))
        self._active: dict[str, tuple[tuple[int, ...], ...]] = {}
        self.refresh_active()

    def op_mask(self, key: str) -> torch.Tensor:
        return getattr(self, f"op_mask_{key}")

    def refresh_active(self) -> None:
        """Cache, on the host, which ops each edge runs, so forward never reads GPU memory."""
        runnable = [i for i, name in enumerate(self.primitives) if name != "none"]
        for key in self.keys:
            rows = self.op_mask(key).tolist()
            self._active[key] = tuple(tuple(i for i in runnable if row[i]) for row in rows)

    def active(self, key: str) -> tuple[tuple[int, ...], ...]:
        return self._active[key]

    def prune(self, key: str, edge: int, op_index: int) -> None:
        """Remove one op from one edge for the rest of the search."""
        mask = self.op_mask(key)
        if mask[edge].sum() <= 1:
            raise ValueError(f"cannot prune the last op of edge {edge} of {key!r}")
        mask[edge, op_index] = False
        self.refresh_active()

    def masked_alphas(self, key: str) -> torch.Tensor:
        return self.alphas[key].masked_fill(~self.op_mask(key), float("-inf"))

    def weights(self, key: str) -> torch.Tensor:
        """softmax over ops, per edge: exactly 0 for pruned ops."""
        return self.masked_alphas(key).softmax(dim=-1)

    def edge_weights(self, key: str) -> torch.Tensor | None:
        """softmax(beta) over the edges entering each node, or None without edge normalisation."""
        if self.betas is None:
            return None
        beta = self.betas[key]
        return torch.cat([beta[[edge for edge, _ in incoming]].softmax(dim=0)
                          for incoming in edges_into(self.nodes)])

    def shrink(self, threshold: float) -> int:
        """Progressive shrinking: prune every op whose weight on an edge fell below
        ``threshold`` (never the edge's strongest op), so later steps no longer compute it.
        Returns how many ops were pruned; pruned ops weigh exactly 0 and cannot be derived."""
        pruned = 0
        for key in self.keys:
            weights = self.weights(key).detach()
            for edge, row in enumerate(weights):
                strongest = int(row.argmax())
                for op in (row < threshold).nonzero().flatten().tolist():
                    if op != strongest and self.op_mask(key)[edge, op]:
                        self.prune(key, edge, op)
                        pruned += 1
        return pruned

    def active_op_count(self) -> int:
        """Ops still searched over all edges and keys (``none`` excluded: it is never run)."""
        return sum(len(ops_of_edge) for key in self.keys for ops_of_edge in self.active(key))

    def mean_logsumexp(self) -> torch.Tensor:
        """Mean over every edge of every key of logsumexp(alpha) (pruned ops excluded): beta-DARTS'
        regulariser. Its gradient is softmax(alpha) / edges, so descending it lowers each
        alpha in proportion to its weight, restraining the op that dominates an edge."""
        values = torch.cat([self.masked_alphas(key).logsumexp(dim=-1) for key in self.keys])
        return values.mean()

    def parameters_list(self) -> list[nn.Parameter]:
        params = list(self.alphas.values())
        if self.betas is not None:
            params += list(self.betas.values())
        return params

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.refresh_active()


@contextmanager
def _frozen_running_statistics(module: nn.Module) -> Iterator[None]:
    """Batch norms normalise as usual but leave their running statistics alone (momentum 0:
    running = 1 x running + 0 x batch), so recomputing a forward does not count its batch
    twice."""
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.momentum is not None]
    saved = [(m.momentum, m.num_batches_tracked) for m in norms]
    for norm in norms:  # nor count the batch again
        norm.momentum, norm.num_batches_tracked = 0.0, None
    try:
        yield
    finally:
        for norm, (momentum, count) in zip(norms, saved):
            norm.momentum, norm.num_batches_tracked = momentum, count


def checkpoint_cell(cell: nn.Module, *arguments) -> torch.Tensor:
    """``cell(*arguments)`` keeping only its inputs for backward and running it again there
    (activation checkpointing): a cell's saved activations are most of a search step's memory.
    The recomputation leaves the norms' running statistics as the first pass left them and
    draws the same drop-path masks (the random state is kept only when a mask is drawn, which
    also keeps it out of a CUDA graph's capture otherwise)."""
    drop_path_rate = arguments[-1]
    return torch.utils.checkpoint.checkpoint(
        cell, *arguments, use_reentrant=False,
        preserve_rng_state=bool(drop_path_rate) and cell.training,
        context_fn=lambda: (nullcontext(), _frozen_running_statistics(cell)))


class SupernetMixin:
    """What a supernet adds to its macro network: ``arch_parameters()`` /
    ``weight_parameters()`` over ``self.architecture`` (an :class:`ArchitectureParameters`),
    and a forward that computes each key's op weights once and hands them to every cell of
    that key (``self.cell_types`` lists the key of each cell)."""

    architecture: ArchitectureParameters
    cell_types: tuple[str, ...]
    drop_path_rate: float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # softmax once per key per step, shared by every cell of that key
        self._weights = {key: (self.architecture.weights(key),
                               self.architecture.edge_weights(key))
                         for key in self.architecture.keys}
        try:
            return super().forward(x)  # type: ignore[misc]  (the macro network's forward)
        finally:
            self._weights = {}

    def run_cell(self, index: int, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        key = self.cell_types[index]
        weights, edge_weights = self._weights[key]
        cell = self.cells[index]  # type: ignore[attr-defined]
        arguments = (s0, s1, weights, edge_weights, self.architecture.active(key),
                     self.drop_path_rate)
        if getattr(self, "checkpoint_cells", False) and torch.is_grad_enabled():
            return checkpoint_cell(cell, *arguments)
        return cell(*arguments)

    @contextmanager
    def without_drop_path(self) -> Iterator[None]:
        """Forwards inside run every path (drop-path off, still in training mode): the
        architecture step's. A random path mask in its forward multiplies each op's output by
        a random 0 or 1/(1-p), noise straight into d loss / d alpha (on the sample data it
        divided the per-step signal-to-noise of the alphas' gradients by 2.5), and it would make
        the second-order step's finite difference compare two different networks."""
        rate, self.drop_path_rate = self.drop_path_rate, 0.0
        try:
            yield
        finally:
            self.drop_path_rate = rate

    def arch_parameters(self) -> list[nn.Parameter]:
        return self.architecture.parameters_list()

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]  # type: ignore[attr-defined]

    def alpha_weights(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) per key, detached, on the host: for derivation and logging."""
        return {key: self.architecture.weights(key).detach().float().cpu()
                for key in self.architecture.keys}

    def edge_strengths(self) -> dict[str, torch.Tensor] | None:
        if self.architecture.betas is None:
            return None
        return {key: self.architecture.edge_weights(key).detach().float().cpu()
                for key in self.architecture.keys}

