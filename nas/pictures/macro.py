"""The macro layout picture: every cell of the network with its kind, width and scale."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from supernet import Genotype, placements

from .style import DPI, save_figure


@dataclass(frozen=True)
class MacroCell:
    """One cell of the network as the macro picture shows it."""

    role: str  # encoder / middle / decoder, or normal / reduce
    key: str  # its cell-type key in the genotype (differs from role with per-cell alphas)
    width: int  # channels of each node (the cell's width)
    scale: int  # output resolution is 1/scale of the input's, per spatial axis

    def label(self) -> str:
        role = self.role + (" ↓2" if self.role == "reduce" else "")
        key = "" if self.key == self.role else f" [{self.key}]"
        return f"{role}{key}\n{self.width}ch  1/{self.scale}"


def macro_cells(genotype: Genotype) -> list[MacroCell]:
    """Role, width and scale of every cell, from the supernet's own macro layout
    (``supernet.placements``, without building the network)."""
    return [MacroCell(cell.kind, key, cell.width, 2 ** cell.output_level)
            for cell, key in zip(placements(genotype), genotype.cell_types)]


_ROLE_FILLS = {"encoder": "#c6dbef", "middle": "#dadaeb", "decoder": "#c7e9c0",
               "normal": "#c6dbef", "reduce": "#fdae6b"}
_BOX_W, _BOX_H = 2.0, 0.9


def _box(ax: Axes, centre: tuple[float, float], text: str, fill: str, gid: str,
         fontsize: float = 8) -> FancyBboxPatch:
    x, y = centre
    box = FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H,
                         boxstyle="round,pad=0.04", facecolor=fill, edgecolor="#333333",
                         linewidth=1.0, zorder=3, gid=gid)
    ax.add_patch(box)
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=4)
    return box


def _arrow(ax: Axes, box_a: FancyBboxPatch, box_b: FancyBboxPatch, gid: str, rad: float = 0.0,
           **style) -> FancyArrowPatch:
    start = (box_a.get_x() + box_a.get_width() / 2, box_a.get_y() + box_a.get_height() / 2)
    end = (box_b.get_x() + box_b.get_width() / 2, box_b.get_y() + box_b.get_height() / 2)
    arrow = FancyArrowPatch(start, end, connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                            mutation_scale=12, patchA=box_a, patchB=box_b, zorder=2, gid=gid,
                            **{"color": "#333333", "linewidth": 1.3, **style})
    ax.add_patch(arrow)
    return arrow


def _u_positions(cells: list[MacroCell]) -> list[tuple[float, float]]:
    """A U: encoder cells step down and right, middle cells run along the bottom, decoder
    cells step back up, each at the row of its scale, so every skip is a horizontal line."""
    stair, run, row = 1.0, 2.5, 1.45
    positions, x = [], 0.0
    for index, cell in enumerate(cells):
        if index:
            previous = cells[index - 1]
            if cell.role == "decoder" and previous.role == "encoder":
                x += run + 1.2  # no middle cell: leave the skip between them room for its label
            elif cell.role == "middle":
                x += run
            else:
                x += stair
        positions.append((x, -np.log2(cell.scale) * row))
    return positions


def _u_macro(ax: Axes, genotype: Genotype, cells: list[MacroCell]) -> None:
    positions = _u_positions(cells)
    boxes = [_box(ax, xy, cell.label(), _ROLE_FILLS[cell.role], f"cell:{i}")
             for i, (xy, cell) in enumerate(zip(positions, cells))]
    for i in range(1, len(cells)):
        before, after = cells[i - 1], cells[i]
        pools = before.role == "encoder"
        ups = after.role == "decoder"
        words = [w for w, on in (("max-pool 2x2", pools), ("up-conv x2", ups)) if on]
        # with no middle cell the last encoder and first decoder share a row: dip below it
        rad = 0.5 if pools and ups else 0.0
        _arrow(ax, boxes[i - 1], boxes[i], "pool" if pools else "up" if ups else "next", rad)
        (xa, ya), (xb, yb) = positions[i - 1], positions[i]
        x, y = (xa + xb) / 2, (ya + yb) / 2
        text = dict(fontsize=7, style="italic", color="#444444")
        if rad:  # under the dip, whose lowest point is rad * chord / 2 below the chord
            ax.text(x, y - rad * abs(xb - xa) / 2 - 0.15, " + ".join(words), ha="center",
                    va="top", **text)
        elif words:  # pools beside the descending stair, up-convs beside the ascending one
            ax.text(x - 0.2 if pools else x + 0.2, y, words[0],
                    ha="right" if pools else "left", va="center", **text)
    encoders = [i for i, c in enumerate(cells) if c.role == "encoder"]
    decoders = [i for i, c in enumerate(cells) if c.role == "decoder"]
    for e, d in zip(encoders, reversed(decoders)):
        _arrow(ax, boxes[e], boxes[d], "skip", linestyle="--", color="#3182bd")
        ax.text((positions[e][0] + positions[d][0]) / 2, positions[e][1] + 0.12, "skip (concat)",
                ha="center", va="bottom", fontsize=7, color="#3182bd")
    stem = _box(ax, (positions[0][0], 1.45), f"stem\n{genotype.in_channels} → "
                f"{genotype.channels}ch", "#f0f0f0", "stem")
    _arrow(ax, stem, boxes[0], "stem")
    head = _box(ax, (positions[-1][0], 1.45), f"head 1x1\n{genotype.num_classes} class"
                f"{'es' if genotype.num_classes > 1 else ''}", "#f0f0f0", "head")
    _arrow(ax, boxes[-1], head, "head")


def _darts_macro(ax: Axes, genotype: Genotype, cells: list[MacroCell]) -> None:
    """A chain read like text that snakes back and forth, so long stacks stay compact and
    every arrow joins neighbours."""
    per_row, run, row = 6, 2.6, 1.6
    labels = ([(f"stem\n{genotype.in_channels} → {genotype.channels}ch", "#f0f0f0", "stem")]
              + [(c.label(), _ROLE_FILLS[c.role], f"cell:{i}") for i, c in enumerate(cells)]
              + [(f"head 1x1 + upsample\n{genotype.num_classes} class"
                  f"{'es' if genotype.num_classes > 1 else ''}", "#f0f0f0", "head")])
    boxes = []
    for i, (text, fill, gid) in enumerate(labels):
        line, column = divmod(i, per_row)
        column = column if line % 2 == 0 else per_row - 1 - column
        boxes.append(_box(ax, (column * run, -line * row), text, fill, gid))
    for i in range(1, len(boxes)):
        _arrow(ax, boxes[i - 1], boxes[i], "next")


def macro_figure(genotype: Genotype) -> Figure:
    """The macro layout: a U (U space) or a chain with reduction cells marked (DARTS space);
    one box per cell labelled with its role, width and scale."""
    cells = macro_cells(genotype)
    figure = Figure(dpi=DPI)
    ax = figure.add_axes((0, 0, 1, 1))
    draw = _u_macro if genotype.space == "unet" else _darts_macro
    draw(ax, genotype, cells)
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    # below the boxes: the note, and with no middle cell the dipping pool/up-conv arrow
    dips = genotype.space == "unet" and genotype.layout["middle"] == 0
    x0 = min(b.get_x() for b in boxes) - 0.8
    x1 = max(b.get_x() + b.get_width() for b in boxes) + 0.8
    y0 = min(b.get_y() for b in boxes) - (2.0 if dips else 1.0)
    y1 = max(b.get_y() + b.get_height() for b in boxes) + 0.5
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    figure.set_size_inches((x1 - x0) * 0.75, (y1 - y0) * 0.75)
    ax.set_aspect("equal")
    ax.axis("off")
    doubling = "per level" if genotype.space == "unet" else "at each reduction"
    output = ("projected back to the width" if genotype.project_output
              else f"the concat of its nodes ({genotype.nodes} x width)")
    note = (f"each cell also reads the output of the cell two before it; {genotype.nodes} nodes "
            f"per cell\na cell's output is {output}; widths double {doubling}")
    ax.text((x0 + x1) / 2, y0 + 0.2, note, ha="center", va="bottom", fontsize=7,
            color="#555555")
    return figure


def plot_macro(genotype: Genotype, path: str | os.PathLike) -> Path:
    """Draw :func:`macro_figure` into the PNG ``path``."""
    return save_figure(macro_figure(genotype), path)
