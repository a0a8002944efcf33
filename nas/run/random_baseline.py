"""``lwnas random-genotype``: the cost-matched random baseline of a searched genotype, written
as a genotype file that ``retrain.py --genotype`` trains exactly like the searched one (same
dataset, image size and splits)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.search import load_genotype_file, save_genotype
from nas.search.random_genotype import COST_TOLERANCE, MAX_TRIES, cost_matched_genotype
from nas.train import check_new_file

#: The reference genotype file's records of its data that the random genotype's file repeats.
_CARRIED = ("output_activation", "data", "data_options", "preset", "data_root")


def random_baseline(like: str | Path, seed: int, out: str | Path, *,
                    tolerance: float = COST_TOLERANCE, max_tries: int = MAX_TRIES,
                    overwrite: bool = False) -> dict[str, Any]:
    """Draw the cost-matched random genotype of the genotype file ``like`` and write it to
    ``out`` (an existing file only with ``overwrite``); returns the match record (costs, gaps,
    draws)."""
    like = Path(like)
    check_new_file(out, "--out", overwrite, "genotype.json")
    reference, metadata = load_genotype_file(like)
    search = metadata.get("search") or {}
    shape = (metadata.get("complexity") or {}).get("input_shape")
    if not shape:
        raise ValueError(f"{like}: records no complexity.input_shape; expected the genotype.json "
                         "of a search")
    genotype, record = cost_matched_genotype(
        reference, tuple(shape), seed, tolerance=tolerance, max_tries=max_tries,
        max_parameter_free=search.get("max_parameter_free"))
    splits = metadata.get("splits")
    if splits and not Path(splits).is_absolute():
        splits = str((like.parent / splits).resolve())  # the searched run's own cases
    # what the retraining reads of the data the search trained on (the output's activation, the
    # target, the data set's options), so the random network is trained as the searched one is
    carried = {key: metadata[key] for key in _CARRIED if key in metadata}
    save_genotype(out, genotype, dataset=metadata.get("dataset"), search=search, **carried,
                  splits=splits, complexity={"params": record["params"],
                                             "flops": record["flops"],
                                             "input_shape": list(shape)},
                  random_baseline={**record, "like": str(like.resolve())})
    return record
