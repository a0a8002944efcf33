"""A cell's DAG as a picture, laid out by hand: layered left to right, edges bent around nodes
and away from each other, op labels slid along their edges until no two overlap.

Part of :mod:`nas.pictures` (which re-exports it); drawn on a pyplot-free figure.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch
from matplotlib.text import Text

from supernet import CellGenotype, Genotype

from .style import DPI, op_style, save_figure, source_label

# Geometry in data units; the figure is scaled so one unit is _INCH_PER_UNIT.
_LAYER_GAP = 2.7
_ROW_GAP = 1.9
_INPUT_RADIUS = 0.42
_NODE_RADIUS = 0.32
_INCH_PER_UNIT = 0.8
_LABEL_FONTSIZE = 8
# Curvatures tried per edge (arc3's rad), straightest first so ties keep edges straight.
_CURVATURES = (0.0, 0.12, -0.12, 0.25, -0.25, 0.4, -0.4, 0.55, -0.55)
# Where along its edge a label may sit; the middle is preferred, the ends are left to arrows.
_LABEL_POSITIONS = np.linspace(0.2, 0.8, 13)
_SAMPLES = 41  # points per edge curve, for the bending and label searches
OUTPUT_NODE_LABEL = "$c_{k}$"


def _cell_positions(cell: CellGenotype) -> dict[int, tuple[float, float]]:
    """Layered left to right: a node sits one layer right of its latest input, so every op
    edge points rightwards; states 0, 1 are the inputs, 2.. the nodes, 2 + N the output."""
    layers = [0, 0]
    for node in cell:
        layers.append(1 + max(layers[index] for _, index in node))
    layers.append(max(layers[2:], default=0) + 1)
    positions = {}
    for layer in sorted(set(layers)):
        states = [state for state, value in enumerate(layers) if value == layer]
        for rank, state in enumerate(states):
            positions[state] = (layer * _LAYER_GAP, ((len(states) - 1) / 2 - rank) * _ROW_GAP)
    return positions


def _arc(start: np.ndarray, end: np.ndarray, rad: float, samples: int = _SAMPLES) -> np.ndarray:
    """Points of matplotlib's ``arc3`` connection (a quadratic Bezier whose control point is
    offset by ``rad`` times the chord, perpendicular to it); exact in data units because the
    cell axes keep an equal aspect."""
    chord = end - start
    control = (start + end) / 2 + rad * np.array([chord[1], -chord[0]])
    t = np.linspace(0.0, 1.0, samples)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t ** 2 * end


def _curve_cost(curve: np.ndarray, rad: float, ends: tuple[int, int],
                centres: dict[int, np.ndarray], radii: dict[int, float],
                drawn: list[np.ndarray]) -> float:
    inner = curve[4:-4]  # near its own nodes every edge crowds its neighbours; ignore that
    cost = 0.5 * abs(rad)
    for state, centre in centres.items():
        if state not in ends:  # passing through a node reads as an edge into it
            gap = np.min(np.linalg.norm(inner - centre, axis=1))
            cost += 20.0 * max(0.0, radii[state] + 0.3 - gap)
    for other in drawn:  # running along another edge hides it; crossing it briefly is fine
        gaps = np.min(np.linalg.norm(inner[:, None] - other[None], axis=2), axis=1)
        cost += 10.0 * float(np.mean(gaps < 0.3))
    return cost


def _choose_curvatures(edges: list[tuple[int, int]], centres: dict[int, np.ndarray],
                       radii: dict[int, float]) -> list[float]:
    """Greedily bend each edge around nodes it would cross and away from edges already
    drawn, e.g. the second of two edges joining the same pair of nodes."""
    rads, drawn = [], []
    for source, target in edges:
        start, end = centres[source], centres[target]
        rad = min(_CURVATURES, key=lambda r: _curve_cost(_arc(start, end, r), r,
                                                         (source, target), centres, radii,
                                                         drawn))
        rads.append(rad)
        drawn.append(_arc(start, end, rad))
    return rads


def _overlap_area(box: np.ndarray, boxes: np.ndarray) -> float:
    if not len(boxes):
        return 0.0
    width = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    height = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    return float(np.sum(np.clip(width, 0, None) * np.clip(height, 0, None)))


def _place_labels(figure: Figure, ax: Axes, texts: list[Text], curves: list[np.ndarray],
                  obstacles: list[np.ndarray]) -> None:
    """Slide each label along its edge to the spot nearest the middle that overlaps no node
    and no label placed before it, and covers as little of the other edges as possible."""
    renderer = FigureCanvasAgg(figure).get_renderer()
    pad = 0.3 * _LABEL_FONTSIZE * figure.dpi / 72  # the text's bbox patch reaches this far out
    to_display = ax.transData.transform
    display_curves = [to_display(curve) for curve in curves]
    placed: list[np.ndarray] = list(obstacles)
    for index, (text, curve) in enumerate(zip(texts, display_curves)):
        extent = text.get_window_extent(renderer)
        half = np.array([extent.width / 2 + pad, extent.height / 2 + pad])
        others = np.concatenate([c for i, c in enumerate(display_curves) if i != index])
        best, best_cost = None, np.inf
        for t in _LABEL_POSITIONS:
            centre = curve[int(round(t * (len(curve) - 1)))]
            box = np.concatenate([centre - half, centre + half])
            covered = np.sum(np.all((others >= box[:2]) & (others <= box[2:]), axis=1))
            cost = (1000.0 * _overlap_area(box, np.array(placed)) / np.prod(2 * half)
                    + 2.0 * covered + 4.0 * abs(t - 0.5))
            if cost < best_cost:
                best, best_cost = (t, box), cost
        t, box = best
        text.set_position(curves[index][int(round(t * (len(curve) - 1)))])
        placed.append(box)


def cell_figure(cell: CellGenotype, title: str = "",
                primitives: Sequence[str] | None = None) -> Figure:
    """The cell's DAG: inputs ``c_{k-2}``, ``c_{k-1}``, intermediate nodes 0..N-1 and the
    output ``c_{k}`` (the concat of the nodes); one arrow per chosen op, coloured by op
    (parameter-free ops dashed) and labelled with its name, and one grey arrow per node into
    the output."""
    if not cell:
        raise ValueError("a cell needs at least one intermediate node")
    positions = _cell_positions(cell)
    output = 2 + len(cell)
    centres = {state: np.array(xy) for state, xy in positions.items()}
    radii = {state: _INPUT_RADIUS if state < 2 or state == output else _NODE_RADIUS
             for state in positions}
    op_edges = [(index, 2 + node, op) for node, pairs in enumerate(cell) for op, index in pairs]
    edges = [(s, t) for s, t, _ in op_edges] + [(2 + node, output) for node in range(len(cell))]
    rads = _choose_curvatures(edges, centres, radii)
    curves = [_arc(centres[s], centres[t], rad) for (s, t), rad in zip(edges, rads)]

    points = np.concatenate(curves)
    margin = 0.8  # room for labels and the outermost node circles
    (x0, y0), (x1, y1) = points.min(axis=0) - margin, points.max(axis=0) + margin
    y1 += 0.6 if title else 0.0  # the title goes inside the axes, which fill the figure
    figure = Figure(figsize=((x1 - x0) * _INCH_PER_UNIT, (y1 - y0) * _INCH_PER_UNIT),
                    dpi=DPI)
    # the axes fill the figure with the data's own aspect ratio, so "equal" holds exactly and
    # the arc3 curves drawn in display space are the ones computed above in data space
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.text((x0 + x1) / 2, y1 - 0.15, title, ha="center", va="top", fontsize=11)

    fills = {0: "#c7e9c0", 1: "#c7e9c0", output: "#fdd0a2"}
    circles = {}
    for state, centre in centres.items():
        circles[state] = Circle(centre, radii[state], facecolor=fills.get(state, "#c6dbef"),
                                edgecolor="#333333", linewidth=1.0, zorder=3)
        ax.add_patch(circles[state])
        label = source_label(state) if state < 2 else (
            OUTPUT_NODE_LABEL if state == output else str(state - 2))
        ax.text(*centre, label, ha="center", va="center", fontsize=10, zorder=4)
    ax.text(centres[output][0], centres[output][1] - radii[output] - 0.2, "concat",
            ha="center", va="top", fontsize=7, color="#555555", zorder=4)

    for index, ((source, target), rad) in enumerate(zip(edges, rads)):
        op = op_edges[index][2] if index < len(op_edges) else None
        colour, linestyle = op_style(op, primitives) if op else ("#9e9e9e", "-")
        ax.add_patch(FancyArrowPatch(
            centres[source], centres[target], connectionstyle=f"arc3,rad={rad}",
            arrowstyle="-|>", mutation_scale=12, color=colour, linestyle=linestyle,
            linewidth=1.8 if op else 1.0, patchA=circles[source], patchB=circles[target],
            zorder=2, gid=f"edge:{source}->{target}"))

    texts = []
    for _, _, op in op_edges:
        colour, _ = op_style(op, primitives)
        texts.append(ax.text(0, 0, op, ha="center", va="center", fontsize=_LABEL_FONTSIZE,
                             zorder=5, bbox=dict(boxstyle="round,pad=0.25", facecolor="white",
                                                 edgecolor=colour, linewidth=1.0)))
    to_display = ax.transData.transform
    node_boxes = []
    for state, centre in centres.items():
        low, high = to_display(centre - radii[state]), to_display(centre + radii[state])
        node_boxes.append(np.concatenate([low, high]))
    _place_labels(figure, ax, texts, curves[:len(op_edges)], node_boxes)
    return figure


def plot_cell(cell: CellGenotype, path: str | os.PathLike, title: str = "",
              primitives: Sequence[str] | None = None) -> Path:
    """Draw :func:`cell_figure` into the PNG ``path``."""
    return save_figure(cell_figure(cell, title, primitives), path)


def plot_cells(genotype: Genotype, out_dir: str | os.PathLike,
               prefix: str = "cell") -> list[Path]:
    """One PNG per cell type, ``{prefix}_{key}.png``, in the order the network uses them."""
    keys = list(dict.fromkeys(genotype.cell_types)) + [
        key for key in genotype.cells if key not in genotype.cell_types]
    paths = []
    for key in keys:
        count = genotype.cell_types.count(key)
        title = f"{key} cell ({count} in the network)"
        paths.append(plot_cell(genotype.cells[key], Path(out_dir) / f"{prefix}_{key}.png",
                               title, genotype.primitives or None))
    return paths


__all__ = ["OUTPUT_NODE_LABEL", "cell_figure", "plot_cell", "plot_cells"]
