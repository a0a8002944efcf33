"""What every picture of :mod:`nas.pictures` shares: op colours, names of a cell's states and
edges, and writing a figure to PNG without pyplot."""
from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import ops
from supernet import edge_inputs

#: Resolution of every picture: sharp enough for a report, small enough to mail.
DPI = 150

# Ops with parameters get vivid colours and solid lines, parameter-free ops muted colours and
# dashed lines, so a collapse onto skips and pools shows at a glance.
_LEARNABLE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
                      "#e377c2", "#8c564b", "#bcbd22")
_PARAMETER_FREE_COLOURS = ("#525252", "#a6761d", "#7b9ea8", "#b0b0b0", "#6b6b9a")
_DEFAULT_ORDER = tuple(dict.fromkeys(ops.SEARCH_OPS + ops.DARTS_OPS))
_INPUT_LABELS = ("$c_{k-2}$", "$c_{k-1}$")


def op_style(op: str, primitives: Sequence[str] | None = None) -> tuple[str, str]:
    """``(colour, linestyle)`` of an op: the colour follows the op's rank among the
    primitives of its kind (with or without parameters), so it is the same in every picture
    of one search; an op outside the primitives gets a colour from a hash of its name."""
    order = tuple(primitives) if primitives else _DEFAULT_ORDER
    free = op in ops.PARAMETER_FREE_OPS
    palette = _PARAMETER_FREE_COLOURS if free else _LEARNABLE_COLOURS
    same_kind = [name for name in order if (name in ops.PARAMETER_FREE_OPS) == free]
    rank = same_kind.index(op) if op in same_kind else zlib.crc32(op.encode())
    return palette[rank % len(palette)], "--" if free else "-"


def source_label(index: int) -> str:
    """Name of the state an edge reads: the cell's inputs, then intermediate node ``i``."""
    return _INPUT_LABELS[index] if index < 2 else f"node {index - 2}"


def edge_labels(edges: int) -> list[str]:
    """``"node i <- input"`` for every edge of a cell, in the supernet's edge order
    (``supernet.edge_inputs``); plain ``"edge e"`` if ``edges`` fits no number of nodes."""
    nodes = 0
    while len(edge_inputs(nodes)) < edges:
        nodes += 1
    if len(edge_inputs(nodes)) != edges:
        return [f"edge {e}" for e in range(edges)]
    return [f"node {node} ← {source_label(state)}" for node, state in edge_inputs(nodes)]


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` as a PNG (creating the folder), on a white background. The figures
    size themselves to their content, so no tight bounding box (which renders twice)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)  # attach a raster canvas: no backend is chosen globally
    figure.savefig(path, format="png", dpi=figure.dpi, facecolor="white")
    return path
