"""Random genotypes of a search's own space, and the cost-matched random baseline: the first
random genotype whose params and FLOPs are both within a tolerance of a searched one's. It
answers the question every reader of a NAS result asks first: does the search beat a random
architecture of the same cost?"""
from __future__ import annotations

import dataclasses
import random
from typing import Sequence

import ops
from supernet import CellGenotype, Genotype, edges_into

from .costs import genotype_costs, network_complexity, none_genotype

#: Both params and FLOPs of the random genotype within this share of the reference's.
COST_TOLERANCE = 0.05
#: Random genotypes drawn before giving up on a cost match.
MAX_TRIES = 2000


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


def cost_matched_genotype(like: Genotype, input_shape: Sequence[int], seed: int, *,
                          tolerance: float = COST_TOLERANCE, max_tries: int = MAX_TRIES,
                          max_parameter_free: int | None = None
                          ) -> tuple[Genotype, dict[str, float]]:
    """The first random genotype (drawn with ``seed``) whose params and FLOPs at
    ``input_shape`` (channels first) are each within ``tolerance`` of ``like``'s.

    Returns it and a record: both networks' costs, the relative differences and the number
    of draws. Raises :class:`NoCostMatchError` after ``max_tries`` draws without a match.
    """
    reference = network_complexity(like, input_shape)
    fixed = network_complexity(none_genotype(like), input_shape)  # shared by every candidate
    rng = random.Random(seed)
    closest = None
    for tries in range(1, max_tries + 1):
        candidate = random_genotype(like, rng, max_parameter_free)
        costs = genotype_costs(candidate, input_shape, fixed)
        gaps = {kind: costs[kind] / reference[kind] - 1 for kind in ("params", "flops")}
        worst = max(abs(gap) for gap in gaps.values())
        if closest is None or worst < closest:
            closest = worst
        if worst <= tolerance:
            costs = network_complexity(candidate, input_shape)  # the exact count, for the record
            return candidate, {"tries": tries, "seed": seed, "tolerance": tolerance,
                               "params": costs["params"], "flops": costs["flops"],
                               "reference_params": reference["params"],
                               "reference_flops": reference["flops"],
                               "params_gap": gaps["params"], "flops_gap": gaps["flops"]}
    raise NoCostMatchError(
        f"no random genotype of {max_tries} drawn with seed {seed} has params and FLOPs within "
        f"{tolerance:.0%} of the reference's ({reference['params'] / 1e6:.3f}M, "
        f"{reference['flops'] / 1e9:.3f} GFLOPs; the closest was {closest:.1%} off); raise "
        "--tries or --tolerance, or try another --seed")
