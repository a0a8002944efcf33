"""Expected-cost penalties: E[params] and E[FLOPs] of a supernet as differentiable functions of
its alphas (seed 002, equations 5 and 6), E[latency] and E[memory] alike, and budgets.

Each op's cost is profiled where its edge runs: at that cell's width and feature-map size, and
at the edge's stride (reduction cells), so deep, narrow-resolution cells and wide, shallow ones
are weighed by what they really cost. Units: millions of params, GFLOPs (= GMACs, the seed's
convention), per image.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Mapping, Sequence

import torch
from torch import nn

import ops
from nas.complexity import activation_memory, profile
from supernet import Genotype, edge_inputs, from_genotype, placements
from supernet.cells import edge_stride

from .latency import LatencyTable, op_memory_mb


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


#: Cost kinds and their units (per image).
UNITS = {"params": "M", "flops": "G", "latency": "ms", "memory": "MB"}
#: Weight of a budget's hinge, per unit of relative excess: at 10, a derived network expected
#: 10% over its budget costs the architecture step 1.0, as much as a poor Dice, while one under
#: its budget costs nothing.
BUDGET_WEIGHT = 10.0


def _kept_share(nodes: int) -> list[float]:
    """Per edge, the share of its node's incoming edges derivation keeps (2 of 2 + i)."""
    return [2.0 / (2 + node) for node, _ in edge_inputs(nodes)]


def none_genotype(model_or_genotype: nn.Module | Genotype) -> Genotype:
    """The macro with every derived op ``none``: the fixed part of any derived network (stem,
    input projections, cell outputs, up-convolutions, head)."""
    from .derive import derive_genotype

    genotype = (model_or_genotype if isinstance(model_or_genotype, Genotype)
                else derive_genotype(model_or_genotype))
    cells = {key: tuple(tuple(("none", state) for _, state in node) for node in cell)
             for key, cell in genotype.cells.items()}
    return dataclasses.replace(genotype, cells=cells)


def genotype_costs(genotype: Genotype, input_shape: Sequence[int],
                   fixed: Mapping[str, int] | None = None) -> dict[str, int]:
    """Params and FLOPs of the network ``genotype`` describes, as its fixed part (``fixed``, or
    counted) plus each chosen op's profiled cost where it runs: the same numbers as
    :func:`network_complexity`, without building the network (fast enough to rank thousands
    of genotypes)."""
    fixed = fixed or network_complexity(none_genotype(genotype), input_shape)
    totals = {"params": float(fixed["params"]), "flops": float(fixed["flops"])}
    spatial = tuple(input_shape[1:])
    for cell, key in zip(placements(genotype), genotype.cell_types):
        for node in genotype.cells[key]:
            for op, state in node:
                stride = edge_stride(cell.reduction, state)
                size = level_size(spatial, cell.level + int(cell.reduction and stride == 1))
                params, flops = op_cost(op, cell.width, stride, size)
                totals["params"] += params * 1e6
                totals["flops"] += flops * 1e9
    return {kind: int(round(value)) for kind, value in totals.items()}


class CostModel(nn.Module):
    """Per alpha key, tables of shape (edges, ops) summing each op's cost over the cells that
    share the key (params, FLOPs; latency on a device with ``latency``; activation memory with
    ``memory``).

    ``expected()`` is seed 002's E[params] and E[FLOPs]: softmax(alpha) contracted with the
    tables over every edge. ``expected_network()`` estimates what the derived network will
    cost, the quantity a budget bounds: the fixed part (the macro with every op ``none``) plus
    each edge's expected op cost times the share of its node's edges derivation keeps.
    """

    def __init__(self, model: nn.Module, input_size: Sequence[int],
                 latency: LatencyTable | None = None, memory: bool = False) -> None:
        super().__init__()
        self.keys = tuple(model.architecture.keys)
        self.input_size = tuple(input_size)
        self.kinds = ("params", "flops") + (("latency",) if latency is not None else ()) + (
            ("memory",) if memory else ())
        sources = [state for _, state in edge_inputs(model.nodes)]
        reductions = [kind == "reduce" for kind in model.cell_kinds]
        keep = torch.tensor(_kept_share(model.nodes), dtype=torch.float64)[:, None]
        for key in self.keys:
            tables = {kind: torch.zeros(len(sources), len(model.primitives), dtype=torch.float64)
                      for kind in self.kinds}
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
                        tables["params"][edge, o] += op_cost(name, width, stride, size)[0]
                        tables["flops"][edge, o] += op_cost(name, width, stride, size)[1]
                        if latency is not None:
                            tables["latency"][edge, o] += latency.op_ms(name, width, stride, size)
                        if memory:
                            tables["memory"][edge, o] += op_memory_mb(name, width, stride, size)
            # kept in float64 (exact sums of the profiled counts) and cast to the alphas' dtype
            # where they are contracted, so a float64 model gets the counts to the last digit
            for kind, table in tables.items():
                self.register_buffer(f"{kind}_{key}", table, persistent=False)
                self.register_buffer(f"kept_{kind}_{key}", table * keep, persistent=False)
        self.fixed = self._fixed_costs(model, latency, memory)

    def _fixed_costs(self, model: nn.Module, latency: LatencyTable | None, memory: bool
                     ) -> dict[str, float]:
        genotype = none_genotype(model)
        shape = (genotype.in_channels,) + self.input_size
        counted = network_complexity(genotype, shape)
        fixed = {"params": counted["params"] / 1e6, "flops": counted["flops"] / 1e9}
        if latency is not None:
            tag = f"fixed|{genotype.space}|{dict(genotype.layout)}|{genotype.channels}|" \
                  f"{genotype.width_growth}|{genotype.num_classes}"
            fixed["latency"] = latency.module_ms(tag, lambda: from_genotype(genotype),
                                                 (1,) + shape)
        if memory:
            fixed["memory"] = activation_memory(from_genotype(genotype), (1,) + shape) / 2**20
        return fixed

    def table(self, kind: str, key: str) -> torch.Tensor:
        return getattr(self, f"{kind}_{key}")

    def _contract(self, model: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
        totals: dict[str, torch.Tensor] = {}
        for key in self.keys:
            weights = model.architecture.weights(key)
            for kind in self.kinds:
                table = getattr(self, f"{prefix}{kind}_{key}").to(weights.device, weights.dtype)
                value = (weights * table).sum()
                totals[kind] = value if kind not in totals else totals[kind] + value
        return totals

    def expected_costs(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Seed 002's expected cost of every kind (sum over all edges); differentiable."""
        return self._contract(model, "")

    def expected(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """(E[params] in M, E[FLOPs] in G) at the current alphas; differentiable in them."""
        costs = self.expected_costs(model)
        return costs["params"], costs["flops"]

    def expected_network(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The derived network's expected cost of every kind, fixed part included."""
        return {kind: value + self.fixed[kind]
                for kind, value in self._contract(model, "kept_").items()}

    def penalty(self, model: nn.Module, lambdas: Mapping[str, float],
                budgets: Mapping[str, float | None] | None = None) -> torch.Tensor:
        """sum_k lambda_k * E[cost_k] (seed 002's penalties, and latency / memory alike) plus,
        per budget b_k, BUDGET_WEIGHT * max(0, E_network[cost_k] / b_k - 1): zero under the
        budget, growing with the relative excess above it."""
        missing = [kind for kind, weight in lambdas.items() if weight and kind not in self.kinds]
        missing += [kind for kind, bound in (budgets or {}).items()
                    if bound is not None and kind not in self.kinds]
        if missing:
            raise ValueError(f"no {', '.join(sorted(set(missing)))} table: latency needs a "
                             "latency device, memory a memory table")
        expected = self.expected_costs(model)
        total = None
        for kind, weight in lambdas.items():
            if weight:
                term = weight * expected[kind]
                total = term if total is None else total + term
        if budgets and any(bound is not None for bound in budgets.values()):
            network = self.expected_network(model)
            for kind, bound in budgets.items():
                if bound is not None:
                    term = BUDGET_WEIGHT * torch.relu(network[kind] / bound - 1.0)
                    total = term if total is None else total + term
        if total is None:
            first = next(iter(expected.values()))
            total = first * 0.0
        return total


def network_complexity(network_or_genotype, input_shape: Sequence[int]) -> dict[str, int]:
    """Exact params and FLOPs (MACs) of a fixed network, or of the network a genotype
    describes, for one input of ``input_shape`` (channels first, no batch axis); counted on the
    meta device, so no weights are allocated."""
    if isinstance(network_or_genotype, Genotype):
        with torch.device("meta"):
            network = from_genotype(network_or_genotype)
    else:
        network = network_or_genotype
    counts = profile(network, (1,) + tuple(input_shape))
    return {"params": counts["params"], "flops": counts["flops"]}
