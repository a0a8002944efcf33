"""Pictures and reports of architectures and runs, drawn with matplotlib alone (no graphviz
binary) on ``Figure`` objects that never go through pyplot, so drawing works headless, selects
no global backend and leaves no figure open. Every picture has a ``*_figure`` function
returning the Figure (what the tests inspect) and a ``plot_*`` function writing it as a PNG:

- cells (:mod:`.cells`): ``cell_figure``, ``plot_cell``, ``plot_cells``;
- the macro layout (:mod:`.macro`): ``macro_figure``, ``plot_macro``;
- the search (:mod:`.search`): ``alpha_figure``, ``plot_alpha_heatmap``,
  ``training_curves_figure``, ``plot_training_curves``;
- everything a run directory allows: :func:`draw_run` (``lwnas visualize RUN``);
- the complexity report beside a U-Net: :mod:`.report` (``lwnas report RUN``).
"""
from __future__ import annotations

import importlib
from typing import Any

#: public name -> the submodule that defines it. Imported on first use (PEP 562): importing
#: ``nas.pictures`` or ``nas.pictures.tensorboard`` loads no matplotlib, whose first import on
#: a fresh machine builds its font cache (22 s on the GPU machine of issue 26); only drawing
#: a picture does.
_EXPORTS = {
    "OUTPUT_NODE_LABEL": ".cells", "cell_figure": ".cells", "plot_cell": ".cells",
    "plot_cells": ".cells", "draw_run": ".draw", "MacroCell": ".macro", "macro_cells": ".macro",
    "macro_figure": ".macro", "plot_macro": ".macro", "alpha_figure": ".search",
    "load_alpha_history": ".search", "plot_alpha_heatmap": ".search",
    "plot_training_curves": ".search", "training_curves_figure": ".search",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = list(_EXPORTS)
