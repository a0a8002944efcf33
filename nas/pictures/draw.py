"""Every picture a run directory (or a genotype file) allows, drawn into its ``figures/``."""
from __future__ import annotations

import os
from pathlib import Path

from nas.search.genotype_file import GenotypeError, load_genotype_file

from .cells import plot_cells
from .macro import plot_macro
from .search import load_alpha_history, plot_alpha_heatmap, plot_training_curves


def draw_run(source: str | os.PathLike, out_dir: str | os.PathLike | None = None
             ) -> tuple[list[Path], list[str]]:
    """Every picture that ``source`` (a run directory or a genotype file) allows: cells and
    macro from ``genotype.json``, the alpha heat map from ``alphas.json`` (or the genotype's
    final alphas), training curves from ``log.csv``. Returns the files written and one
    message per picture that could not be drawn."""
    source = Path(source)
    if source.is_dir():
        run_dir, genotype_path = source, source / "genotype.json"
        out = Path(out_dir) if out_dir else source / "figures"
    else:
        run_dir, genotype_path = None, source
        out = Path(out_dir) if out_dir else source.parent / f"{source.stem}_figures"
    written, problems = [], []
    genotype, metadata = None, {}
    if genotype_path.exists():
        try:
            genotype, metadata = load_genotype_file(genotype_path)
        except GenotypeError as error:
            problems.append(str(error))
    elif run_dir is None:
        problems.append(f"{source}: no such file")
    if genotype is not None:
        written += plot_cells(genotype, out)
        written.append(plot_macro(genotype, out / "macro.png"))

    alphas_path = run_dir / "alphas.json" if run_dir else None
    try:
        if alphas_path is not None and alphas_path.exists():
            history, primitives = load_alpha_history(alphas_path)
            primitives = primitives or (genotype.primitives if genotype else ())
            if not primitives:
                raise ValueError(f"{alphas_path} names no primitives and there is no genotype "
                                 "to take them from")
            written.append(plot_alpha_heatmap(history, primitives, out / "alphas.png"))
        elif genotype is not None and metadata.get("alphas"):
            written.append(plot_alpha_heatmap([metadata["alphas"]], genotype.primitives,
                                              out / "alphas.png"))
    except (ValueError, OSError) as error:  # json.JSONDecodeError is a ValueError
        problems.append(f"alpha heat map: {error}")

    log_path = run_dir / "log.csv" if run_dir else None
    if log_path is not None and log_path.exists():
        try:
            written.append(plot_training_curves(log_path, out / "training_curves.png"))
        except (ValueError, OSError) as error:
            problems.append(f"{log_path}: {error}")
    if not written and not problems:
        problems.append(f"{source}: found none of genotype.json, alphas.json, log.csv")
    return written, problems
