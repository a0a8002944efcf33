"""Derive a discrete genotype from a supernet's alphas, with guards against collapse.

DARTS keeps, for every intermediate node, the 2 incoming edges whose strongest non-``none`` op
weighs most, each with that op. Searches tend to collapse onto parameter-free ops (skip
connections above all) as they run longer; two standard fixes are offered:

- ``max_parameter_free``: at derivation, a cap on parameter-free ops per cell; the weakest
  excess choices are replaced by the best op with parameters on the same edge (P-DARTS' cap on
  skip connections, generalised).
- early stopping when skip connections dominate (DARTS+), decided by the search loop from
  :func:`skip_connect_count`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

import ops
from supernet import CellGenotype, Genotype, edge_inputs, edges_into


def derive_cell(weights: torch.Tensor, primitives: Sequence[str], nodes: int,
                edge_weights: torch.Tensor | None = None,
                max_parameter_free: int | None = None) -> CellGenotype:
    """Top-2 incoming edges per node by their strongest non-``none`` op weight (times the edge
    weight under edge normalisation). Ties go to the lower index, so derivation is
    deterministic."""
    weights = weights.detach().float().cpu()
    allowed = [i for i, name in enumerate(primitives) if name != "none"]
    with_params = [i for i in allowed if primitives[i] not in ops.PARAMETER_FREE_OPS]
    chosen: list[list[tuple[int, int, float]]] = []  # per node: (edge, op index, strength)
    for incoming in edges_into(nodes):
        candidates = []
        for edge, source in incoming:
            row = weights[edge]
            best = max(allowed, key=lambda i: (row[i].item(), -i))
            strength = row[best].item()
            if edge_weights is not None:
                strength *= float(edge_weights[edge])
            candidates.append((strength, -source, edge, best))
        candidates.sort(reverse=True)
        chosen.append([(edge, best, strength) for strength, _, edge, best in candidates[:2]])
    if max_parameter_free is not None and with_params:
        _cap_parameter_free(chosen, weights, primitives, with_params, max_parameter_free)
    source_of = [state for _, state in edge_inputs(nodes)]
    return tuple(
        tuple((primitives[op], source_of[edge]) for edge, op, _ in sorted(node, key=lambda c: c[0]))
        for node in chosen
    )


def _cap_parameter_free(chosen, weights, primitives, with_params, cap: int) -> None:
    free = [(strength, n, k) for n, node in enumerate(chosen)
            for k, (_, op, strength) in enumerate(node)
            if primitives[op] in ops.PARAMETER_FREE_OPS]
    free.sort()  # weakest first
    for _, n, k in free[: max(len(free) - cap, 0)]:
        edge, _, strength = chosen[n][k]
        row = weights[edge]
        replacement = max(with_params, key=lambda i: (row[i].item(), -i))
        chosen[n][k] = (edge, replacement, strength)


def derive_genotype(model, max_parameter_free: int | None = None) -> Genotype:
    """The genotype of a ``USupernet`` or ``DartsSupernet`` at its current alphas."""
    from supernet import DartsSupernet

    weights = model.alpha_weights()
    strengths = model.edge_strengths()
    cells = {
        key: derive_cell(weights[key], model.primitives, model.nodes,
                         None if strengths is None else strengths[key], max_parameter_free)
        for key in model.architecture.keys
    }
    return Genotype(
        space="darts" if isinstance(model, DartsSupernet) else "unet",
        cells=cells, cell_types=tuple(model.cell_types), layout=dict(model.layout),
        channels=model.channels, in_channels=model.in_channels, num_classes=model.num_classes,
        spatial_dims=model.spatial_dims, nodes=model.nodes, project_output=model.project_output,
        primitives=tuple(model.primitives))


def parameter_free_share(genotype: Genotype) -> float:
    """Share of the chosen ops (over all cell types) that have no parameters."""
    used = genotype.ops_used()
    return sum(op in ops.PARAMETER_FREE_OPS for op in used) / max(len(used), 1)


def skip_connect_count(genotype: Genotype) -> Mapping[str, int]:
    """Skip connections chosen per cell type (DARTS+ stops when one type holds too many)."""
    return {key: sum(op == "skip_connect" for node in cell for op, _ in node)
            for key, cell in genotype.cells.items()}
