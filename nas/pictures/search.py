"""Pictures of a search as it ran: architecture weights over epochs and the training log.

Part of :mod:`nas.pictures` (which re-exports these); drawn on pyplot-free figures.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from .style import DPI, edge_labels, op_style, save_figure

if TYPE_CHECKING:
    import pandas as pd

_KEYS_PER_ROW = 4

# Panels of the training curves: title and the log columns drawn in it, with their legend
# names. The search log and the retrain log share the first ones.
CURVE_PANELS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("loss", (("train_loss", "train"), ("val_loss", "validation"))),
    ("validation overlap", (("val_dsc", "DSC"), ("val_miou", "MIoU"))),
    ("parameters (M)", (("expected_params_M", "E[params] (supernet)"),
                        ("derived_params_M", "derived network"))),
    ("FLOPs (G)", (("expected_flops_G", "E[FLOPs] (supernet)"),
                   ("derived_flops_G", "derived network"))),
    ("parameter-free share", (("parameter_free_share", "derived network"),)),
    ("learning rate", (("weight_lr", "weights"), ("lr", "learning rate"))),
)


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a tensor, possibly on a GPU or requiring grad
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=float)


def _normalise_history(alphas_history: Sequence[Mapping[str, Any]] | Mapping[str, Any],
                       primitives: Sequence[str]) -> list[dict[str, np.ndarray]]:
    if isinstance(alphas_history, Mapping):  # one epoch, e.g. a genotype file's final alphas
        alphas_history = [alphas_history]
    if not alphas_history:
        raise ValueError("no epochs of alphas to draw")
    if not all(isinstance(epoch, Mapping) for epoch in alphas_history):
        raise ValueError("every epoch of alphas must map cell-type keys to (edges, ops) weights")
    history = [{key: _as_array(value) for key, value in epoch.items()}
               for epoch in alphas_history]
    for epoch, alphas in enumerate(history):
        if set(alphas) != set(history[0]):
            raise ValueError(f"epoch {epoch} has alphas for {sorted(alphas)}, epoch 0 for "
                             f"{sorted(history[0])}")
        for key, values in alphas.items():
            if values.ndim != 2 or values.shape[1] != len(primitives):
                raise ValueError(f"epoch {epoch}: alphas {key!r} have shape {values.shape}, "
                                 f"expected (edges, {len(primitives)}) for primitives "
                                 f"{', '.join(primitives)}")
            if values.shape != history[0][key].shape:
                raise ValueError(f"epoch {epoch}: alphas {key!r} have shape {values.shape}, "
                                 f"epoch 0 {history[0][key].shape}")
    return history


def alpha_figure(alphas_history: Sequence[Mapping[str, Any]] | Mapping[str, Any],
                 primitives: Sequence[str], key: str | Sequence[str] | None = None,
                 epochs: Sequence[int] | None = None) -> Figure:
    """One heat map per cell-type key of the last epoch's weights (rows = edges, columns =
    ops, the strongest op of each edge outlined) and, with 2 or more epochs, below each map
    the mean weight of every op over the key's edges per epoch. ``key`` picks one key (or
    several); epochs are numbered from 1 unless ``epochs`` says otherwise."""
    primitives = list(primitives)
    history = _normalise_history(alphas_history, primitives)
    keys = list(history[0]) if key is None else [key] if isinstance(key, str) else list(key)
    for name in keys:
        if name not in history[0]:
            raise ValueError(f"no alphas for key {name!r}; have {', '.join(history[0])}")
    epochs = list(epochs) if epochs is not None else list(range(1, len(history) + 1))
    if len(epochs) != len(history):
        raise ValueError(f"{len(epochs)} epoch numbers for {len(history)} epochs of alphas")
    evolution = len(history) > 1
    final = history[-1]
    edges = max(final[name].shape[0] for name in keys)
    # per-cell alphas give one key per cell: wrap the panels so the picture stays printable
    per_row = min(len(keys), _KEYS_PER_ROW)
    blocks = math.ceil(len(keys) / per_row)
    heights = [0.26 * edges + 1.2] + ([2.6] if evolution else [])
    figure = Figure(figsize=(2.6 + 0.5 * len(primitives) * per_row, 0.4 + blocks * sum(heights)),
                    dpi=DPI, layout="constrained")
    grid = figure.add_gridspec(blocks * len(heights), per_row, height_ratios=heights * blocks)
    norm = weight_norm([final[name] for name in keys], len(primitives))
    maps = []
    for index, name in enumerate(keys):
        block, column = divmod(index, per_row)
        ax = figure.add_subplot(grid[block * len(heights), column])
        maps.append(ax)
        values = final[name]
        image = ax.imshow(values, cmap="RdBu_r", norm=norm, aspect="auto")
        ax.set_title(f"{name} (epoch {epochs[-1]})", fontsize=9)
        ax.set_xticks(range(len(primitives)), primitives, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(values.shape[0]),
                      edge_labels(values.shape[0]) if column == 0 else [], fontsize=7)
        for row, best in enumerate(values.argmax(axis=1)):
            ax.add_patch(_outline(best, row))
        if evolution:
            lines = figure.add_subplot(grid[block * len(heights) + 1, column])
            means = np.stack([alphas[name].mean(axis=0) for alphas in history])
            for op_index, op in enumerate(primitives):
                colour, linestyle = op_style(op, primitives)
                lines.plot(epochs, means[:, op_index], color=colour, linestyle=linestyle,
                           label=op, linewidth=1.4)
            lines.xaxis.set_major_locator(MaxNLocator(integer=True))
            lines.set_xlabel("epoch", fontsize=8)
            lines.set_ylabel("mean weight over edges" if column == 0 else "", fontsize=8)
            lines.tick_params(labelsize=7)
            lines.grid(alpha=0.3)
            if index == per_row - 1:
                lines.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.colorbar(image, ax=maps, label=f"softmax weight (last epoch; white = uniform "
                                          f"1/{len(primitives)})", shrink=0.8, aspect=30)
    return figure


def weight_norm(weights: Sequence[np.ndarray], ops: int) -> Normalize:
    """Colours over the weights' own range, centred (white) on the uniform 1/ops: a search whose
    weights stay within 0.1244-0.1257 shows those differences instead of one flat colour on a
    0-0.13 scale."""
    low = min(float(w.min()) for w in weights)
    high = max(float(w.max()) for w in weights)
    uniform = 1.0 / ops
    if low < uniform < high:
        return TwoSlopeNorm(vcenter=uniform, vmin=low, vmax=high)
    return Normalize(vmin=low, vmax=high if high > low else low + 1e-9)


def _outline(column: int, row: int) -> Rectangle:
    return Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="white",
                     linewidth=1.2)


def plot_alpha_heatmap(alphas_history: Sequence[Mapping[str, Any]] | Mapping[str, Any],
                       primitives: Sequence[str], path: str | os.PathLike,
                       key: str | Sequence[str] | None = None) -> Path:
    """Draw :func:`alpha_figure` into the PNG ``path``. Alphas may be numpy arrays, nested
    lists or tensors, one mapping of key -> (edges, ops) weights per epoch."""
    return save_figure(alpha_figure(alphas_history, primitives, key), path)


def load_alpha_history(path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """Read the search's ``alphas.json``: ``{"epochs": [{key: edges x ops}, ...],
    "primitives": [...]}`` -> (history, primitives)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("epochs"), list):
        raise ValueError(f"{path}: expected an object with an 'epochs' list")
    return data["epochs"], list(data.get("primitives") or [])


def _read_log(log: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    import pandas as pd  # only the training curves need pandas; keep the import off the rest

    return log if isinstance(log, pd.DataFrame) else pd.read_csv(log)


def curve_panels(available: Sequence[str], columns: Sequence[str] | None = None
                 ) -> list[tuple[str, list[tuple[str, str]]]]:
    """The panels to draw for a log with ``available`` columns: the known groups with the
    columns present (restricted to ``columns`` if given), then any other requested column in
    a panel of its own. Missing columns are skipped."""
    wanted = [c for c in (columns if columns is not None else
                          [c for _, group in CURVE_PANELS for c, _ in group]) if c in available]
    panels, grouped = [], set()
    for title, group in CURVE_PANELS:
        present = [(column, name) for column, name in group if column in wanted]
        grouped.update(column for column, _ in group)
        if present:
            panels.append((title, present))
    panels += [(column, [(column, column)]) for column in wanted if column not in grouped]
    return panels


def training_curves_figure(log: str | os.PathLike | pd.DataFrame,
                           columns: Sequence[str] | None = None) -> Figure:
    """Loss, validation DSC/MIoU, expected and derived params/FLOPs, parameter-free share and
    learning rate over epochs, one panel per group, from a search or retrain ``log.csv``."""
    frame = _read_log(log)
    panels = curve_panels(list(frame.columns), columns)
    if not panels:
        raise ValueError(f"nothing to plot: the log has none of the columns "
                         f"{', '.join(columns or [c for _, g in CURVE_PANELS for c, _ in g])}")
    x = frame["epoch"] if "epoch" in frame.columns else frame.index
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    figure = Figure(figsize=(4.2 * ncols, 3.0 * nrows), dpi=DPI, layout="constrained")
    for index, (title, group) in enumerate(panels):
        ax = figure.add_subplot(nrows, ncols, index + 1)
        for column, name in group:
            values = frame[column].astype(float)
            kept = values.notna()  # e.g. validation every few epochs: join the points
            ax.plot(np.asarray(x[kept], dtype=float), values[kept].to_numpy(), label=name,
                    marker="o" if kept.sum() < 30 else None, markersize=3, linewidth=1.4,
                    gid=column)
        drawn = frame[[column for column, _ in group]].stack()  # stack drops the NaNs
        # a decaying learning rate reads best on a log axis, once it spans a decade
        if (title == "learning rate" and len(drawn) and (drawn > 0).all()
                and drawn.max() > 10 * drawn.min()):
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.grid(alpha=0.3)
        if len(group) > 1:
            ax.legend(fontsize=7)
    return figure


def plot_training_curves(log: str | os.PathLike | pd.DataFrame, path: str | os.PathLike,
                         columns: Sequence[str] | None = None) -> Path:
    """Draw :func:`training_curves_figure` into the PNG ``path``."""
    return save_figure(training_curves_figure(log, columns), path)


__all__ = ["CURVE_PANELS", "alpha_figure", "plot_alpha_heatmap", "load_alpha_history",
           "curve_panels", "training_curves_figure", "plot_training_curves"]
