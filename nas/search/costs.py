"""Expected-cost penalties: E[params] and E[FLOPs] of a supernet as differentiable functions of
its alphas (seed 002, equations 5 and 6).

Each op's cost is profiled where its edge runs: at that cell's width and feature-map size, and
at the edge's stride (reduction cells), so deep, narrow-resolution cells and wide, shallow ones
are weighed by what they really cost. Units: millions of params, GFLOPs (= GMACs, the seed's
convention), per image.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
from torch import nn

import ops
from nas.complexity import profile
from supernet import edge_inputs
from supernet.cells import edge_stride


@lru_cache(maxsize=4096)
def op_cost(name: str, channels: int, stride: int, spatial_size: tuple[int, ...]
            ) -> tuple[float, float]:
    """(params in M, FLOPs in G) of one op at ``channels`` on a map of ``spatial_size``.

    Profiled on the meta device: exact counts without arithmetic, so big maps cost nothing.
    """
    with torch.device("meta"):
        op = ops.build(name, channels, stride, len(spatial_size))
    counts = profile(op, (1, channels) + tuple(spatial_size))
    return counts["params"] / 1e6, counts["flops"] / 1e9


def level_size(input_size: Sequence[int], level: int) -> tuple[int, ...]:
    """Spatial size after ``level`` 2x2 max-pools (floor, as the pools do)."""
    size = tuple(input_size)
    for _ in range(level):
        size = tuple(s // 2 for s in size)
    return size


class CostModel(nn.Module):
    """Per alpha key, tables of shape (edges, ops) summing each op's cost over the cells that
    share the key; ``expected()`` contracts them with softmax(alpha)."""

    def __init__(self, model: nn.Module, input_size: Sequence[int]) -> None:
        super().__init__()
        self.keys = tuple(model.architecture.keys)
        self.input_size = tuple(input_size)
        sources = [state for _, state in edge_inputs(model.nodes)]
        reductions = [kind == "reduce" for kind in model.cell_kinds]
        for key in self.keys:
            params = torch.zeros(len(sources), len(model.primitives), dtype=torch.float64)
            flops = torch.zeros_like(params)
            for index, cell_key in enumerate(model.cell_types):
                if cell_key != key:
                    continue
                width = model.cell_widths[index]
                for edge, source in enumerate(sources):
                    stride = edge_stride(reductions[index], source)
                    # a reduction cell's inputs are at its level; its nodes one level down
                    level = model.cell_levels[index] + int(reductions[index] and stride == 1)
                    size = level_size(self.input_size, level)
                    for o, name in enumerate(model.primitives):
                        p, f = op_cost(name, width, stride, size)
                        params[edge, o] += p
                        flops[edge, o] += f
            self.register_buffer(f"params_{key}", params.float(), persistent=False)
            self.register_buffer(f"flops_{key}", flops.float(), persistent=False)

    def table(self, kind: str, key: str) -> torch.Tensor:
        return getattr(self, f"{kind}_{key}")

    def expected(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """(E[params] in M, E[FLOPs] in G) at the current alphas; differentiable in them."""
        expected_params = expected_flops = None
        for key in self.keys:
            weights = model.architecture.weights(key)
            p = (weights * self.table("params", key).to(weights.device)).sum()
            f = (weights * self.table("flops", key).to(weights.device)).sum()
            expected_params = p if expected_params is None else expected_params + p
            expected_flops = f if expected_flops is None else expected_flops + f
        return expected_params, expected_flops

    def penalty(self, model: nn.Module, lambda_params: float, lambda_flops: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """lambda1 * E[params] + lambda2 * E[FLOPs], and the two expectations."""
        expected_params, expected_flops = self.expected(model)
        return (lambda_params * expected_params + lambda_flops * expected_flops,
                expected_params, expected_flops)


def network_complexity(network_or_genotype, input_shape: Sequence[int]) -> dict[str, int]:
    """Exact params and FLOPs (MACs) of a fixed network, or of the network a genotype
    describes, for one input of ``input_shape`` (channels first, no batch axis); counted on the
    meta device, so no weights are allocated."""
    from supernet import Genotype, from_genotype

    if isinstance(network_or_genotype, Genotype):
        with torch.device("meta"):
            network = from_genotype(network_or_genotype)
    else:
        network = network_or_genotype
    counts = profile(network, (1,) + tuple(input_shape))
    return {"params": counts["params"], "flops": counts["flops"]}
