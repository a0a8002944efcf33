"""The U-shaped macro of Auto-LW-MISN, shared by the supernet and the fixed network.

stem -> encoder cells (each followed by a 2x2 max-pool) -> middle cells -> decoder cells (each
preceded by a x2 transposed conv whose output is concatenated with the encoder cell of the same
scale) -> 1x1 head. Every cell reads the two previous cells' outputs, as in the seed's Fig. 2.
Cell widths grow per level: ``channels * width_growth ** level`` (doubling by default).
"""
from __future__ import annotations

import copy
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

import ops
from ops import LayerSpec

from .architecture import ArchitectureParameters, SupernetMixin
from .batched import BatchedSearchCell
from .batched_group import require_batchable
from .cells import FixedCell, SearchCell, num_edges
from .fused import FusedSearchCell
from .fused_ops import FUSED_OPS, fusable
from .genotype import WIDTH_GROWTH, CellPlacement, Genotype, output_activation_for
from .mixed_op import SEARCH_NORM

CELL_TYPES = ("encoder", "middle", "decoder")
#: cell factory(index, in_channels0, in_channels1, width) -> cell with ``out_channels``
CellFactory = Callable[[int, int, int, int], nn.Module]


def parse_layout(layout: str | Sequence[int] | Mapping[str, int]) -> dict[str, int]:
    """``"2/3/2"``, ``(2, 3, 2)`` or a dict -> ``{"encoder": 2, "middle": 3, "decoder": 2}``."""
    if isinstance(layout, Mapping):
        counts = [layout[k] for k in CELL_TYPES]
    elif isinstance(layout, str):
        try:
            counts = [int(part) for part in layout.split("/")]
        except ValueError:
            counts = []
    else:
        counts = list(layout)
    if len(counts) != 3 or any(int(c) < 0 for c in counts):
        raise ValueError(f"layout must be encoder/middle/decoder cell counts like 2/3/2, "
                         f"got {layout!r}")
    encoder, middle, decoder = (int(c) for c in counts)
    if encoder < 1 or decoder != encoder:
        raise ValueError(f"layout {layout!r}: needs at least one encoder cell and as many "
                         "decoder cells as encoder cells (one skip per scale)")
    return {"encoder": encoder, "middle": middle, "decoder": decoder}


def level_width(channels: int, level: int, width_growth: float = WIDTH_GROWTH) -> int:
    """Width of the cells at a resolution level: ``channels * width_growth ** level``."""
    return max(int(round(channels * width_growth ** level)), 1)


def u_placements(layout: Mapping[str, int], channels: int,
                 width_growth: float = WIDTH_GROWTH) -> tuple[CellPlacement, ...]:
    """Kind, level and width of every cell of the U, in order: encoder cells at levels
    0..E-1 (each followed by a pool), middle cells at level E, decoder cells back up to 0,
    widths by :func:`level_width`."""
    encoder, middle, decoder = (layout[k] for k in CELL_TYPES)
    levels = ([("encoder", level) for level in range(encoder)] + [("middle", encoder)] * middle
              + [("decoder", encoder - 1 - i) for i in range(decoder)])
    return tuple(CellPlacement(kind, level, level_width(channels, level, width_growth))
                 for kind, level in levels)


class UShapedNetwork(nn.Module):
    """The macro skeleton; subclasses supply the cells and how to run them."""

    def __init__(self, in_channels: int, num_classes: int, channels: int,
                 layout: Mapping[str, int], spatial_dims: int, cell_factory: CellFactory,
                 stem_norm: LayerSpec = "batch", width_growth: float = WIDTH_GROWTH,
                 output_activation: str | None = None) -> None:
        super().__init__()
        dims = ops.check_spatial_dims(spatial_dims)
        self.spatial_dims = dims
        self.num_classes = num_classes
        # what the 3D pipeline reads (nas.inference): sigmoid regions or softmax classes
        self.output_activation = output_activation_for(num_classes, output_activation)
        self.layout = dict(layout)
        self.stem = ops.ConvNormAct(dims, in_channels, channels, 3, norm=stem_norm, act=None)
        self.width_growth = float(width_growth)
        self.placements = u_placements(self.layout, channels, width_growth)
        self.cell_kinds = [p.kind for p in self.placements]
        self.cell_levels = [p.level for p in self.placements]
        self.cell_widths = [p.width for p in self.placements]
        cells, ups, skip_channels = [], [], []
        previous_previous = previous = channels
        for index, placement in enumerate(self.placements):
            in1 = previous
            if placement.kind == "decoder":
                up_channels = max(previous // 2, 1)
                ups.append(ops.conv_transpose(dims, previous, up_channels, 2, 2))
                in1 = up_channels + skip_channels.pop()
            cell = cell_factory(index, previous_previous, in1, placement.width)
            cells.append(cell)
            if placement.kind == "encoder":
                skip_channels.append(cell.out_channels)
            previous_previous, previous = previous, cell.out_channels
        self.cells = nn.ModuleList(cells)
        self.ups = nn.ModuleList(ups)
        self.head = ops.conv(dims, previous, num_classes, 1, bias=True)
        self.pool = ops.max_pool(dims, 2, 2)

    def run_cell(self, index: int, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the input resolution (sizes not divisible by 2^levels are padded back)."""
        s0 = s1 = self.stem(x)
        skips, index = [], 0
        for _ in range(self.layout["encoder"]):
            out = self.run_cell(index, s0, s1)
            index += 1
            skips.append(out)
            s0, s1 = s1, self.pool(out)
        for _ in range(self.layout["middle"]):
            out = self.run_cell(index, s0, s1)
            index += 1
            s0, s1 = s1, out
        for up in self.ups:
            skip = skips.pop()
            upsampled = ops.pad_to_match(up(s1), skip)
            out = self.run_cell(index, s0, torch.cat([upsampled, skip], dim=1))
            index += 1
            s0, s1 = s1, out
        return self.head(s1)


class USupernet(SupernetMixin, UShapedNetwork):
    """The search supernet: every cell a :class:`SearchCell`; alphas shared per cell type
    (encoder, middle, decoder) by default, or one set per cell (``alpha_sharing="cell"``).

    ``fused=True`` uses :class:`FusedSearchCell`s: the same function with the edges leaving a
    node evaluated together (fewer, larger kernels: the fast search step). ``batched=True``
    uses :class:`BatchedSearchCell`s: the same again with fewer kernels still (the two cell
    inputs' edges together, the ops' last norms and the mixed sums stacked).
    ``checkpoint_cells=True`` keeps only each cell's inputs for backward and recomputes the
    cell there: the same result with a fraction of the memory, for one more forward.
    """

    def __init__(self, in_channels: int, num_classes: int = 1, channels: int = 16,
                 layout: str | Sequence[int] | Mapping[str, int] = (2, 3, 2),
                 spatial_dims: int = 2, primitives: Sequence[str] = ops.SEARCH_OPS,
                 nodes: int = 4, alpha_sharing: str = "type", partial_channels: int = 1,
                 edge_normalization: bool = False, project_output: bool = True,
                 drop_path_rate: float = 0.0, fused: bool = False, batched: bool = False,
                 width_growth: float = WIDTH_GROWTH, output_activation: str | None = None,
                 checkpoint_cells: bool = False) -> None:
        if alpha_sharing not in ("type", "cell"):
            raise ValueError(f"alpha_sharing must be 'type' or 'cell', got {alpha_sharing!r}")
        layout = parse_layout(layout)
        self.primitives = tuple(primitives)
        self.nodes = nodes
        self.partial_channels = partial_channels
        self.project_output = project_output
        self.drop_path_rate = drop_path_rate
        self.alpha_sharing = alpha_sharing
        if fused and not fusable(self.primitives):
            raise ValueError(f"fused cells support {sorted(FUSED_OPS) + sorted(ops.PARAMETER_FREE_OPS)}; "
                             f"got primitives {self.primitives}")
        if batched:
            require_batchable(self.primitives)
        self.fused = fused
        self.batched = batched
        self.checkpoint_cells = checkpoint_cells
        cell_class = BatchedSearchCell if batched else FusedSearchCell if fused else SearchCell

        def factory(index: int, in0: int, in1: int, width: int) -> nn.Module:
            return cell_class(in0, in1, width, spatial_dims, self.primitives, nodes,
                              partial_channels, project_output)

        super().__init__(in_channels, num_classes, channels, layout, spatial_dims, factory,
                         stem_norm=SEARCH_NORM, width_growth=width_growth,
                         output_activation=output_activation)
        self.channels = channels
        self.in_channels = in_channels
        self.cell_types = (tuple(self.cell_kinds) if alpha_sharing == "type"
                           else tuple(f"cell{i}" for i in range(len(self.cells))))
        keys = list(dict.fromkeys(self.cell_types))
        self.architecture = ArchitectureParameters(keys, nodes, num_edges(nodes),
                                                   self.primitives, edge_normalization)

    @torch.no_grad()
    def load_from(self, per_edge: "USupernet") -> "USupernet":
        """Take over the weights, alphas and statistics of a per-edge supernet of the same
        settings: this one then computes the same function, whatever its cells."""
        if per_edge.fused or per_edge.batched:
            raise ValueError("load_from takes a per-edge supernet (fused=False, batched=False)")
        outside = {k: v for k, v in per_edge.state_dict().items() if not k.startswith("cells.")}
        # the cells' keys are reported (batch norms without a batch count add theirs): not ours
        result = self.load_state_dict(outside, strict=False)
        foreign = [k for k in result.missing_keys + result.unexpected_keys if not k.startswith("cells.")]
        if foreign:
            raise ValueError(f"another supernet: {', '.join(foreign)}")
        for mine, theirs in zip(self.cells, per_edge.cells, strict=True):
            if isinstance(mine, SearchCell):
                mine.load_state_dict(theirs.state_dict())
            else:
                mine.load_from(theirs)
        return self

    @torch.no_grad()
    def export_to(self, per_edge: "USupernet") -> "USupernet":
        """Write this supernet's weights, alphas and statistics into ``per_edge`` (a per-edge
        supernet of the same settings), so that ``per_edge`` computes the same function: the
        inverse of :meth:`load_from`. ``load_from`` copies each value of the per-edge layout to
        places of this one; run on numbered values it says where each comes from, so no
        layout's inverse is written out by hand. Per-edge statistics this layout does not keep
        (parameter-free ops' norms, shared here) keep their own values."""
        def values(net: nn.Module) -> list[torch.Tensor]:
            return [t for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()]

        numbered = copy.deepcopy(per_edge).double()
        count = 0
        for tensor in values(numbered):
            tensor.copy_(torch.arange(count, count + tensor.numel(), dtype=torch.float64).view_as(tensor))
            count += tensor.numel()
        traced = copy.deepcopy(self).double()
        for tensor in values(traced):
            tensor.fill_(-1.0)
        traced.load_from(numbered)
        sources = torch.cat([t.flatten() for t in values(traced)])
        mine = torch.cat([t.detach().flatten().double() for t in values(self)])
        flat = torch.cat([t.detach().flatten().double() for t in values(per_edge)])
        written = torch.zeros(count, dtype=torch.bool)
        kept = sources >= 0
        flat[sources[kept].long()] = mine[kept]
        written[sources[kept].long()] = True
        parameters = sum(p.numel() for p in per_edge.parameters() if p.is_floating_point())
        if not written[:parameters].all():  # parameters come first in values()
            raise ValueError("this supernet does not hold every weight of the per-edge one")
        offset = 0
        for tensor in values(per_edge):
            tensor.copy_(flat[offset: offset + tensor.numel()].view_as(tensor))
            offset += tensor.numel()
        return per_edge


class FixedUNet(UShapedNetwork):
    """The network a U-space genotype describes, trained from scratch (with drop-path).

    ``output_activation``: ``"sigmoid"`` or ``"softmax"`` (default: by ``num_classes``); several
    sigmoid channels (regions) are what the genotype's search trained on (its file's
    ``data.target``), not a fact of the genotype itself."""

    def __init__(self, genotype: Genotype, drop_path_rate: float = 0.0,
                 norm: LayerSpec = "batch", act: LayerSpec = "relu",
                 output_activation: str | None = None) -> None:
        if genotype.space != "unet":
            raise ValueError(f"FixedUNet needs a 'unet' genotype, got space {genotype.space!r}")
        self.genotype = genotype
        self.drop_path_rate = drop_path_rate

        def factory(index: int, in0: int, in1: int, width: int) -> nn.Module:
            return FixedCell(genotype.cell_of(index), in0, in1, width, genotype.spatial_dims,
                             genotype.project_output, norm=norm, act=act)

        super().__init__(genotype.in_channels, genotype.num_classes, genotype.channels,
                         parse_layout(genotype.layout), genotype.spatial_dims, factory,
                         width_growth=genotype.width_growth, output_activation=output_activation)
        if len(self.cells) != len(genotype.cell_types):
            raise ValueError(f"genotype lists {len(genotype.cell_types)} cell types for a "
                             f"layout of {len(self.cells)} cells")

    def run_cell(self, index: int, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        return self.cells[index](s0, s1, self.drop_path_rate)
