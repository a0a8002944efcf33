"""The comparison space of seed Table 5: a DARTS-style stack of cells with reduction cells at 1/3
and 2/3 of the depth and an upsampling head, searched with the same mixed op."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

import ops
from ops import LayerSpec

from .architecture import ArchitectureParameters, SupernetMixin
from .cells import FixedCell, SearchCell, num_edges
from .genotype import CellPlacement, Genotype, output_activation_for
from .mixed_op import SEARCH_NORM


def reduction_positions(num_cells: int) -> tuple[int, ...]:
    """DARTS places its two reduction cells at 1/3 and 2/3 of the depth."""
    return tuple(sorted({num_cells // 3, 2 * num_cells // 3}))


def darts_placements(num_cells: int, channels: int) -> tuple[CellPlacement, ...]:
    """Kind, input level and width of every cell of the stack: widths double at each
    reduction cell, whose edges read the finer level (costs are counted where edges run)."""
    reductions = reduction_positions(num_cells)
    placements, width, level = [], channels, 0
    for index in range(num_cells):
        reduction = index in reductions
        width *= 2 if reduction else 1
        placements.append(CellPlacement("reduce" if reduction else "normal", level, width,
                                        reduction))
        level += int(reduction)
    return tuple(placements)


class DartsStack(nn.Module):
    """stem -> cells (widths double at each reduction) -> 1x1 head -> upsample to input size."""

    def __init__(self, in_channels: int, num_classes: int, channels: int, num_cells: int,
                 spatial_dims: int, cell_factory: Callable[..., nn.Module],
                 stem_norm: LayerSpec = "batch", output_activation: str | None = None) -> None:
        super().__init__()
        dims = ops.check_spatial_dims(spatial_dims)
        if num_cells < 3:
            raise ValueError(f"the DARTS space needs at least 3 cells, got {num_cells}")
        self.spatial_dims = dims
        self.num_classes = num_classes
        self.output_activation = output_activation_for(num_classes, output_activation)
        self.layout = {"cells": num_cells}
        self.stem = ops.ConvNormAct(dims, in_channels, channels, 3, norm=stem_norm, act=None)
        self.placements = darts_placements(num_cells, channels)
        self.cell_kinds = [p.kind for p in self.placements]
        self.cell_levels = [p.level for p in self.placements]
        self.cell_widths = [p.width for p in self.placements]
        cells = []
        previous_previous = previous = channels
        for index, placement in enumerate(self.placements):
            cell = cell_factory(index, previous_previous, previous, placement.width,
                                placement.reduction)
            cells.append(cell)
            previous_previous, previous = previous, cell.out_channels
        self.cells = nn.ModuleList(cells)
        self.head = ops.conv(dims, previous, num_classes, 1, bias=True)

    def run_cell(self, index: int, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for index in range(len(self.cells)):
            s0, s1 = s1, self.run_cell(index, s0, s1)
        mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
        return F.interpolate(self.head(s1), size=x.shape[2:], mode=mode, align_corners=False)


class DartsSupernet(SupernetMixin, DartsStack):
    """Search supernet of the DARTS comparison space: alphas for normal and reduction cells."""

    def __init__(self, in_channels: int, num_classes: int = 1, channels: int = 16,
                 num_cells: int = 8, spatial_dims: int = 2,
                 primitives: Sequence[str] = ops.SEARCH_OPS, nodes: int = 4,
                 partial_channels: int = 1, edge_normalization: bool = False,
                 project_output: bool = False, drop_path_rate: float = 0.0,
                 output_activation: str | None = None) -> None:
        self.primitives = tuple(primitives)
        self.nodes = nodes
        self.partial_channels = partial_channels
        self.project_output = project_output
        self.drop_path_rate = drop_path_rate

        def factory(index, in0, in1, width, reduction):
            return SearchCell(in0, in1, width, spatial_dims, self.primitives, nodes,
                              partial_channels, project_output, reduction)

        super().__init__(in_channels, num_classes, channels, num_cells, spatial_dims, factory,
                         stem_norm=SEARCH_NORM, output_activation=output_activation)
        self.channels = channels
        self.in_channels = in_channels
        self.cell_types = tuple(self.cell_kinds)
        self.architecture = ArchitectureParameters(("normal", "reduce"), nodes, num_edges(nodes),
                                                   self.primitives, edge_normalization)


class FixedDartsNetwork(DartsStack):
    """The network a DARTS-space genotype describes."""

    def __init__(self, genotype: Genotype, drop_path_rate: float = 0.0,
                 norm: LayerSpec = "batch", act: LayerSpec = "relu",
                 output_activation: str | None = None) -> None:
        if genotype.space != "darts":
            raise ValueError(f"FixedDartsNetwork needs a 'darts' genotype, got "
                             f"{genotype.space!r}")
        self.genotype = genotype
        self.drop_path_rate = drop_path_rate

        def factory(index, in0, in1, width, reduction):
            return FixedCell(genotype.cell_of(index), in0, in1, width, genotype.spatial_dims,
                             genotype.project_output, reduction, norm, act)

        super().__init__(genotype.in_channels, genotype.num_classes, genotype.channels,
                         int(genotype.layout["cells"]), genotype.spatial_dims, factory,
                         output_activation=output_activation)

    def run_cell(self, index: int, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        return self.cells[index](s0, s1, self.drop_path_rate)
