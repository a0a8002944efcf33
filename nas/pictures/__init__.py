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
from .cells import OUTPUT_NODE_LABEL, cell_figure, plot_cell, plot_cells
from .draw import draw_run
from .macro import MacroCell, macro_cells, macro_figure, plot_macro
from .search import alpha_figure, load_alpha_history, plot_alpha_heatmap, plot_training_curves, training_curves_figure

__all__ = ["cell_figure", "plot_cell", "plot_cells", "MacroCell", "macro_cells",
           "macro_figure", "plot_macro", "alpha_figure", "plot_alpha_heatmap",
           "training_curves_figure", "plot_training_curves", "load_alpha_history", "draw_run",
           "OUTPUT_NODE_LABEL"]
