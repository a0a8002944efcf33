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

import math
from typing import Mapping, Sequence

import torch

import ops
from supernet import WIDTH_GROWTH, CellGenotype, Genotype, edge_inputs, edges_into


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
        primitives=tuple(model.primitives),
        width_growth=getattr(model, "width_growth", WIDTH_GROWTH))


def parameter_free_share(genotype: Genotype) -> float:
    """Share of the chosen ops (over all cell types) that have no parameters."""
    used = genotype.ops_used()
    return sum(op in ops.PARAMETER_FREE_OPS for op in used) / max(len(used), 1)


def skip_connect_count(genotype: Genotype) -> Mapping[str, int]:
    """Skip connections chosen per cell type (DARTS+ stops when one type holds too many)."""
    return {key: sum(op == "skip_connect" for node in cell for op, _ in node)
            for key, cell in genotype.cells.items()}


#: A derived op that beats the runner-up on its edge by less than this softmax weight was
#: chosen by noise whatever the search did: at the seed's initialisation (alphas ~ 1e-3 N(0, 1))
#: margins are ~1e-4, and a decision worth retraining is clearer than one percentage point.
NOISE_MARGIN = 0.01


def noise_margin(arch_lr: float, arch_steps: int, ops: int) -> float:
    """The decision margin architecture gradients of random sign would reach: Adam moves each
    alpha by about its learning rate per step, so after ``arch_steps`` steps of random sign
    the alphas spread by ~lr * sqrt(steps), and two ops' weights (each ~1/ops) by about that
    over ``ops``; consistent gradients reach lr * steps / ops. A median margin below this (or
    below :data:`NOISE_MARGIN`) means the alphas decided nothing."""
    return max(NOISE_MARGIN, arch_lr * math.sqrt(max(arch_steps, 0)) / max(ops, 1))


def decision_margins(weights: Mapping[str, torch.Tensor], genotype: Genotype
                     ) -> dict[str, list[float]]:
    """Per cell type, for every chosen edge (in node order): the softmax weight of its op minus
    that of the runner-up op on the same edge (``none`` and pruned ops excluded). A negative
    margin means a collapse guard overrode the alphas' choice."""
    edge_of = {pair: edge for edge, pair in enumerate(edge_inputs(genotype.nodes))}
    primitives = list(genotype.primitives)
    margins: dict[str, list[float]] = {}
    for key, cell in genotype.cells.items():
        rows = weights[key].detach().float().cpu()
        values = []
        for node, pairs in enumerate(cell):
            for op, source in pairs:
                row = rows[edge_of[(node, source)]]
                chosen = primitives.index(op)
                rivals = [float(row[i]) for i, name in enumerate(primitives)
                          if name != "none" and i != chosen and float(row[i]) > 0]
                values.append(float(row[chosen]) - (max(rivals) if rivals else 0.0))
        margins[key] = values
    return margins


def margin_summary(margins: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Minimum and median decision margin over every chosen edge of every cell type."""
    values = sorted(v for key in margins for v in margins[key])
    if not values:
        return {"margin_min": float("nan"), "margin_median": float("nan")}
    middle = len(values) // 2
    median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    return {"margin_min": values[0], "margin_median": median}
