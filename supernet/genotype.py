"""The derived architecture as data: which op on which edge, per cell type, plus the macro layout.

This is the in-memory form the fixed networks are built from; reading and writing it as
versioned JSON (with the search's metadata) lives in ``nas.search.genotype_file``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

#: One intermediate node: its two (op name, input index) choices. Inputs 0 and 1 are the cell's
#: two inputs, 2.. the earlier intermediate nodes.
NodeGenotype = tuple[tuple[str, int], ...]
CellGenotype = tuple[NodeGenotype, ...]

SPACES = ("unet", "darts")
#: U space: cell widths double per level unless a genotype or preset says otherwise.
WIDTH_GROWTH = 2.0


#: How a network's logits become probabilities: one sigmoid per output channel (a binary mask, or
#: overlapping regions such as BraTS WT/TC/ET) or a softmax over classes.
OUTPUT_ACTIVATIONS = ("sigmoid", "softmax")


def output_activation_for(num_classes: int, activation: str | None = None) -> str:
    """``activation`` checked, or the default of ``num_classes`` outputs: a sigmoid for one, a
    softmax over several (several sigmoid channels, i.e. regions, must be asked for)."""
    if activation is None:
        return "sigmoid" if num_classes == 1 else "softmax"
    if activation not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"output_activation must be one of {', '.join(OUTPUT_ACTIVATIONS)}, "
                         f"got {activation!r}")
    return activation


@dataclass(frozen=True)
class Genotype:
    """A searched architecture.

    ``cells`` maps a cell-type key (``"encoder"``, ``"middle"``, ``"decoder"``; ``"normal"``,
    ``"reduce"`` for the DARTS space; ``"cell3"`` with per-cell alphas) to its nodes;
    ``cell_types`` lists the key of every cell of the network in order.
    ``layout`` holds the cell counts: ``{"encoder", "middle", "decoder"}`` for the U space,
    ``{"cells"}`` for the DARTS space.
    """

    space: str
    cells: Mapping[str, CellGenotype]
    cell_types: tuple[str, ...]
    layout: Mapping[str, int]
    channels: int
    in_channels: int
    num_classes: int
    spatial_dims: int = 2
    nodes: int = 4
    project_output: bool = True
    primitives: tuple[str, ...] = field(default_factory=tuple)
    width_growth: float = WIDTH_GROWTH  # U space: cell widths are channels * growth ** level

    def ops_used(self) -> list[str]:
        """Every op name of every cell type (with repeats), for collapse statistics."""
        return [op for cell in self.cells.values() for node in cell for op, _ in node]

    def cell_of(self, index: int) -> CellGenotype:
        return self.cells[self.cell_types[index]]


@dataclass(frozen=True)
class CellPlacement:
    """Where one cell of a macro network sits: its kind (``encoder``/``middle``/``decoder`` or
    ``normal``/``reduce``), the resolution level of its inputs (maps are 1/2**level of the
    input per axis), its width (channels of each node), and whether it halves the size."""

    kind: str
    level: int
    width: int
    reduction: bool = False

    @property
    def output_level(self) -> int:
        return self.level + int(self.reduction)
