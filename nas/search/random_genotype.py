"""Random genotypes of a search's own space, and the cost-matched random baseline: a random
genotype whose params and FLOPs are both within a tolerance of a searched one's. It answers the
question every reader of a NAS result asks first: does the search beat a random architecture of
the same cost?

The baseline is the first uniform draw that matches (rejection sampling: a draw from the space
conditioned on the cost). A searched genotype far in the tail of the space's costs (say every
op the most expensive one, or every op free) may have no match among thousands of draws; which
one the search finds depends on the processor's rounding, so a fixed budget of draws matched on
one CPU and not on another (``make demo`` on an AMD EPYC: the closest of 2,000 draws was 7.5%
off). Then the closest draws are repaired: their wiring kept, ops swapped one edge at a time,
each swap the one that narrows the cost gap most, until both costs are within the tolerance.
"""
from __future__ import annotations

import dataclasses
import heapq
import math
import random
from typing import Mapping, Sequence

import ops
from supernet import CellGenotype, Genotype, edges_into

from .costs import genotype_costs, network_complexity, none_genotype

#: Both params and FLOPs of the random genotype within this share of the reference's.
COST_TOLERANCE = 0.05
#: Uniform draws before the closest are repaired.
MAX_TRIES = 2000
#: The closest draws repaired, closest first, when no draw matched.
REPAIRED_DRAWS = 20
KINDS = ("params", "flops")


class NoCostMatchError(ValueError):
    """No random genotype matched the reference's cost within the tolerance."""


def random_cell(primitives: Sequence[str], nodes: int, rng: random.Random,
                max_parameter_free: int | None = None) -> CellGenotype:
    """A valid cell: every node reads 2 distinct earlier states, each through an op drawn
    uniformly from ``primitives`` (``none`` excluded, as derivation never keeps it). With
    ``max_parameter_free``, cells holding more parameter-free ops are drawn again (the cap a
    search's derivation applied)."""
    allowed = [name for name in primitives if name != "none"]
    while True:
        cell = tuple(
            tuple(sorted(((rng.choice(allowed), state)
                          for state in rng.sample([state for _, state in incoming], 2)),
                         key=lambda pair: pair[1]))
            for incoming in edges_into(nodes))
        free = sum(op in ops.PARAMETER_FREE_OPS for node in cell for op, _ in node)
        if max_parameter_free is None or free <= max_parameter_free:
            return cell


def random_genotype(like: Genotype, rng: random.Random,
                    max_parameter_free: int | None = None) -> Genotype:
    """``like`` with every cell type drawn at random (same space, layout, widths, primitives)."""
    cells = {key: random_cell(like.primitives, like.nodes, rng, max_parameter_free)
             for key in like.cells}
    return dataclasses.replace(like, cells=cells)


def _gaps(costs: Mapping[str, int], reference: Mapping[str, int]) -> dict[str, float]:
    """Each cost kind's relative gap to ``reference``."""
    return {kind: costs[kind] / reference[kind] - 1 for kind in KINDS}


def _worst_gap(genotype: Genotype, input_shape: Sequence[int], fixed: Mapping[str, int],
               reference: Mapping[str, int]) -> float:
    """The larger relative cost gap of ``genotype`` against ``reference``."""
    return max(abs(gap) for gap in _gaps(genotype_costs(genotype, input_shape, fixed), reference).values())


def repair_cost(genotype: Genotype, input_shape: Sequence[int], fixed: Mapping[str, int],
                reference: Mapping[str, int], rng: random.Random, tolerance: float,
                max_parameter_free: int | None = None) -> tuple[Genotype, int]:
    """Swap ``genotype``'s ops, one edge at a time, towards ``reference``'s cost: the edges in
    random order, on each the op (of the search's, ``none`` excluded) that lowers the larger
    of the two cost gaps most, until both are within ``tolerance`` or no single swap lowers it.
    The wiring (which states each node reads) stays as drawn, and so does the cap on
    parameter-free ops. Returns the genotype and the number of ops swapped."""
    allowed = [name for name in genotype.primitives if name != "none"]
    cells = {key: [list(node) for node in cell] for key, cell in genotype.cells.items()}

    def build() -> Genotype:
        return dataclasses.replace(genotype, cells={key: tuple(tuple(node) for node in cell)
                                                    for key, cell in cells.items()})

    def free(cell: list[list[tuple[str, int]]]) -> int:
        return sum(op in ops.PARAMETER_FREE_OPS for node in cell for op, _ in node)

    worst = _worst_gap(genotype, input_shape, fixed, reference)
    edges = [(key, node, slot) for key, cell in cells.items() for node in range(len(cell))
             for slot in range(len(cell[node]))]
    swaps, improved = 0, True
    while worst > tolerance and improved:
        improved = False
        rng.shuffle(edges)
        for key, node, slot in edges:
            current, state = cells[key][node][slot]
            best = (worst, current)
            for op in rng.sample(allowed, len(allowed)):  # ties go to a random op
                if op == current:
                    continue
                cells[key][node][slot] = (op, state)
                if max_parameter_free is None or free(cells[key]) <= max_parameter_free:
                    gap = _worst_gap(build(), input_shape, fixed, reference)
                    if gap < best[0]:
                        best = (gap, op)
            cells[key][node][slot] = (best[1], state)
            if best[1] != current:
                worst, swaps, improved = best[0], swaps + 1, True
            if worst <= tolerance:
                break
    return build(), swaps


def cost_matched_genotype(like: Genotype, input_shape: Sequence[int], seed: int, *,
                          tolerance: float = COST_TOLERANCE, max_tries: int = MAX_TRIES,
                          max_parameter_free: int | None = None
                          ) -> tuple[Genotype, dict[str, float]]:
    """A random genotype (drawn with ``seed``) whose params and FLOPs at ``input_shape``
    (channels first) are each within ``tolerance`` of ``like``'s: the first of ``max_tries``
    uniform draws that is, else the first of the :data:`REPAIRED_DRAWS` closest draws that
    :func:`repair_cost` brings within it (never ``like`` itself).

    Returns it and a record: both networks' costs, the relative differences, the number of
    draws and of ops swapped (0 for a plain draw). Raises :class:`NoCostMatchError`, naming
    the closest gap, when neither finds a match.
    """
    reference = network_complexity(like, input_shape)
    fixed = network_complexity(none_genotype(like), input_shape)  # shared by every candidate
    rng = random.Random(seed)
    closest: list[tuple[float, int, Genotype]] = []  # a heap of the closest draws, negated gaps

    def record(candidate: Genotype, tries: int, swaps: int) -> tuple[Genotype, dict[str, float]]:
        costs = network_complexity(candidate, input_shape)  # the exact count, for the record
        gaps = _gaps(costs, reference)
        return candidate, {"tries": tries, "seed": seed, "tolerance": tolerance,
                           "repaired_ops": swaps,
                           "params": costs["params"], "flops": costs["flops"],
                           "reference_params": reference["params"],
                           "reference_flops": reference["flops"],
                           "params_gap": gaps["params"], "flops_gap": gaps["flops"]}

    for tries in range(1, max_tries + 1):
        candidate = random_genotype(like, rng, max_parameter_free)
        worst = _worst_gap(candidate, input_shape, fixed, reference)
        if worst <= tolerance and candidate.cells != like.cells:
            return record(candidate, tries, 0)
        entry = (-worst, -tries, candidate)  # the farthest (then the latest) on top
        if len(closest) < REPAIRED_DRAWS:
            heapq.heappush(closest, entry)
        elif entry > closest[0]:
            heapq.heapreplace(closest, entry)
    best_gap = math.inf
    for *_, candidate in sorted(closest, reverse=True):  # closest first
        repaired, swaps = repair_cost(candidate, input_shape, fixed, reference, rng, tolerance,
                                      max_parameter_free)
        worst = _worst_gap(repaired, input_shape, fixed, reference)
        if worst <= tolerance and repaired.cells != like.cells:
            return record(repaired, max_tries, swaps)
        best_gap = min(best_gap, worst)
    raise NoCostMatchError(
        f"no random genotype within {tolerance:.0%} of the reference's params and FLOPs "
        f"({reference['params'] / 1e6:.3f}M, {reference['flops'] / 1e9:.3f} GFLOPs): the closest of "
        f"{max_tries} draws with seed {seed}, its ops swapped towards that cost, is {best_gap:.1%} "
        f"off; accept that with --tolerance {math.ceil(best_gap * 1000) / 1000:g}, or try another --seed")
