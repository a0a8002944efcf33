"""TensorBoard view of a search or a retrain, written by an epoch callback (``--tensorboard``).

Both loops call ``on_epoch_end(epoch, row)`` after each epoch with the row they append to
``log.csv`` (which stays the record: this is a view of it). :class:`TensorBoardLogger` is such a
callback; it writes into ``RUN/tensorboard/``:

- every numeric entry of the row as a scalar, grouped by what it measures (``loss/``, ``overlap/``
  DSC and MIoU, ``cost/`` E[params], E[FLOPs] and the derived network's, ``collapse/`` the
  parameter-free share and decision margins, ``lr/`` learning rates, ``time/``), the rest under
  ``other/``;
- from a search (its row also carries ``alphas``: softmax weights per cell type, (edges, ops), and
  ``genotype``: the derived genotype, see ``nas.search.loop.run_search``): per cell type the
  softmax weight of every op averaged over the type's edges (``op_weight/<cell>/<op>``), and the
  derived cells drawn by ``nas.pictures`` (``cell/<cell>`` images, one per epoch).

``tensorboard`` is imported when a logger is made; without it that is one line naming the flag.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nas.train.optional import require_package

#: Tag group of each log column (by exact name, then by prefix); anything else goes to ``other/``.
SCALAR_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loss", ("train_loss", "val_loss", "test_loss")),
    ("overlap", ("val_dsc", "val_miou", "val_dice_")),
    ("cost", ("expected_", "derived_")),
    ("collapse", ("parameter_free_share", "margin_", "noise_margin", "active_ops")),
    ("lr", ("lr", "weight_lr", "arch_lr")),
    ("time", ("seconds",)),
)
#: Row entries that are not scalars (a search's op weights and derived genotype).
STRUCTURED = ("alphas", "genotype")


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of a log column, e.g. ``val_dsc`` -> ``overlap/val_dsc``."""
    for group, names in SCALAR_GROUPS:
        if key in names or any(name.endswith("_") and key.startswith(name) for name in names):
            return f"{group}/{key}"
    return f"other/{key}"


def figure_pixels(figure) -> np.ndarray:
    """A matplotlib Figure rendered to (H, W, 3) uint8 without pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # only when a picture is drawn

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class TensorBoardLogger:
    """``on_epoch_end`` callback writing a run's epochs to TensorBoard event files in ``log_dir``.

    ``pictures=False`` skips the cell images (a second or so per epoch). Call :meth:`close` at
    the end (or use it as a context manager).
    """

    def __init__(self, log_dir: str | os.PathLike, pictures: bool = True) -> None:
        require_package("tensorboard", "--tensorboard", "tensorboard")
        writer_module = require_package("torch.utils.tensorboard", "--tensorboard", "tensorboard")
        self.log_dir = Path(log_dir)
        self.pictures = pictures
        self.writer = writer_module.SummaryWriter(str(self.log_dir))

    def __call__(self, epoch: int, row: Mapping[str, Any]) -> None:
        for key, value in row.items():
            if key in STRUCTURED or key == "epoch":
                continue
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                if math.isfinite(float(value)):
                    self.writer.add_scalar(scalar_tag(key), float(value), epoch)
        genotype = row.get("genotype")
        primitives = tuple(getattr(genotype, "primitives", ()) or ())
        alphas = row.get("alphas")
        if alphas and primitives:
            for cell, weights in alphas.items():
                mean = np.asarray(weights, dtype=float).mean(axis=0)
                for op, weight in zip(primitives, mean):
                    self.writer.add_scalar(f"op_weight/{cell}/{op}", float(weight), epoch)
        if genotype is not None and self.pictures:
            from .cells import cell_figure  # matplotlib: only when a picture is drawn

            for cell in dict.fromkeys(genotype.cell_types):
                figure = cell_figure(genotype.cells[cell], f"{cell} cell, epoch {epoch}", primitives or None)
                self.writer.add_image(f"cell/{cell}", figure_pixels(figure), epoch, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


__all__ = ["SCALAR_GROUPS", "TensorBoardLogger", "figure_pixels", "scalar_tag"]
