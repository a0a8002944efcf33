"""Search supernets (mixed ops, search cells, the U-shaped and DARTS spaces) and the fixed
networks built from a genotype through the same op registry."""
from torch import nn

from .architecture import ArchitectureParameters, SupernetMixin, checkpoint_cell
from .batched import BatchedSearchCell
from .cells import FixedCell, SearchCell, drop_path, edge_inputs, edges_from, edges_into, num_edges, resample_to
from .darts import DartsSupernet, FixedDartsNetwork, darts_placements, reduction_positions
from .genotype import (
    OUTPUT_ACTIVATIONS,
    SPACES,
    CellGenotype,
    CellPlacement,
    Genotype,
    NodeGenotype,
    output_activation_for,
)
from .mixed_op import SEARCH_NORM, MixedOp
from .unet import CELL_TYPES, WIDTH_GROWTH, FixedUNet, USupernet, level_width, parse_layout, u_placements

SUPERNETS = {"unet": USupernet, "darts": DartsSupernet}


def build_supernet(space: str = "unet", **kwargs) -> nn.Module:
    """``USupernet`` (space ``"unet"``) or ``DartsSupernet`` (``"darts"``) with ``kwargs``."""
    if space not in SUPERNETS:
        raise ValueError(f"unknown search space {space!r}; valid: {', '.join(SUPERNETS)}")
    return SUPERNETS[space](**kwargs)


def placements(genotype: Genotype) -> tuple[CellPlacement, ...]:
    """Kind, level and width of every cell of the network ``genotype`` describes (the macro
    layout, without building the network)."""
    if genotype.space == "unet":
        return u_placements(parse_layout(genotype.layout), genotype.channels,
                            genotype.width_growth)
    return darts_placements(int(genotype.layout["cells"]), genotype.channels)


def from_genotype(genotype: Genotype, drop_path_rate: float = 0.0, **kwargs) -> nn.Module:
    """The fixed network of ``genotype``, with freshly initialised weights."""
    if genotype.space == "unet":
        return FixedUNet(genotype, drop_path_rate, **kwargs)
    if genotype.space == "darts":
        return FixedDartsNetwork(genotype, drop_path_rate, **kwargs)
    raise ValueError(f"unknown genotype space {genotype.space!r}; valid: {', '.join(SPACES)}")


__all__ = [
    "ArchitectureParameters", "SupernetMixin", "checkpoint_cell", "BatchedSearchCell",
    "FixedCell", "SearchCell", "drop_path",
    "edge_inputs", "edges_from", "edges_into", "num_edges", "resample_to", "DartsSupernet",
    "FixedDartsNetwork", "darts_placements", "reduction_positions", "SPACES", "CellGenotype",
    "CellPlacement", "Genotype", "NodeGenotype", "SEARCH_NORM", "MixedOp", "CELL_TYPES",
    "FixedUNet", "USupernet", "WIDTH_GROWTH", "level_width", "parse_layout", "u_placements",
    "SUPERNETS", "build_supernet", "placements", "from_genotype", "OUTPUT_ACTIVATIONS",
    "output_activation_for",
]
