"""K-fold cross-validation of any retrain (a genotype's, a 2D baseline's, a hand-designed 3D
network's): K networks on a case-level K-fold split, each trained by the flow that trains it
alone, into ``RUN/fold_i/`` (the layout: ``nas.run.fold_layout``).

The folds are cut once, seeded by the run's seed, from the cases of the splits a single retrain
would use (the search's ``splits.json`` beside a genotype, ``--splits``, or the data set's
default): fold i tests on the i-th fold of the train and test cases, trains on the others and
selects checkpoints on the validation cases (the search chose its architecture on them, so they
are never tested). The folds are stratified by whether a case holds foreground. A splits file
that holds folds already (another network's folds run) is used as it is, so searched, random
and baseline networks are tested on the same cases and compare case by case.

Resuming (``--resume RUN``, or a torchrun restart) keeps the folds that are done, continues the
fold that has a checkpoint and starts the rest; ``--fold i`` trains one fold, so folds may run
as separate jobs into one directory. The cross-validated scores (``nas.run.cv_metrics``) are
written when the last fold ends.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping

import data
from nas.train import atomic_write_text, check_output_dir, elastic
from nas.train.distributed import DistributedContext, barrier, broadcast_object, gather_objects, on_rank_zero, say
from nas.train.run_dir import default_run_dir

from .cv_metrics import cv_line, write_cv_metrics
from .data_setup import verify_data
from .fold_layout import fold_dir, run_folds

#: ``train(fold_directory, fold_splits, resume)``: one fold's retrain (its data set verified
#: already), its result.
TrainFold = Callable[[Path, dict, bool], dict]
#: Keys of a splits dict that belong to a fold, not to the splits the folds are cut from.
_FOLD_KEYS = ("folds", "fold_seed", "fold", "plan_cases")


def folds_requested(folds: int | None, fold: int | None, splits_file: Any, out: str | Path | None,
                    resume: bool) -> bool:
    """Whether a retrain is a folds run: ``--folds`` or ``--fold`` given, a ``--splits`` file that
    holds folds, or ``--resume`` of a folds run's directory."""
    if folds is not None or fold is not None or (resume and out is not None and run_folds(out)):
        return True
    if isinstance(splits_file, (str, Path)) and Path(splits_file).is_file():
        return bool(data.load_splits(splits_file).get("folds"))
    return False


def foreground_strata(dataset: str, data_root: str | Path | None, splits: Mapping[str, Any], seed: int,
                      **options: Any) -> dict[str, Hashable]:
    """Whether each case of the train and test lists holds foreground, read from the prepared
    cases (prepared as the folds will use them: planned from every case, ``options`` as the
    training's), for folds stratified by it."""
    every = sorted({case for name in ("train", "val", "test") for case in splits[name]})
    strata: dict[str, Hashable] = {}
    with tempfile.TemporaryDirectory(prefix="lwnas-strata-") as folder:
        path = data.save_splits(Path(folder) / "splits.json", {**splits, "plan_cases": every})
        for split in ("train", "test"):
            if not splits[split]:
                continue
            cases = data.get_dataset(dataset, data_root, split, seed, splits_file=path, augment=False, **options)
            strata.update({case: cases.foreground_voxels(case) > 0 for case in cases.cases})
    return strata


def _load(splits_file: Any) -> dict | None:
    if splits_file is None:
        return None
    return dict(splits_file) if isinstance(splits_file, Mapping) else data.load_splits(splits_file)


def _same_folds(first: dict, second: dict) -> bool:
    return [fold["test"] for fold in first["folds"]] == [fold["test"] for fold in second["folds"]]


def prepare_fold_splits(run: Path, folds: int | None, fold: int | None, seed: int, continuing: bool,
                        splits_file: Any, base_splits: Callable[[], dict],
                        strata: Callable[[dict], Mapping[str, Hashable]]) -> dict:
    """The folds run's ``splits.json`` (rank 0): kept when the run continues (a resume, a restart,
    another fold of it started, or a ``--fold`` into it without new folds asked for), else copied
    from a ``splits_file`` with folds or cut from the splits a single retrain would use
    (``splits_file``, else ``base_splits()``). Folds that already hold a run are refused unless
    the run continues."""
    check_output_dir(run)
    target = run / "splits.json"
    existing = data.load_splits(target) if run_folds(run) else None
    given = _load(splits_file)
    started = [index for index in range(len(existing["folds"])) if (fold_dir(run, index) / "checkpoint.pt").is_file()
               ] if existing else []
    given_folds = bool(given and given.get("folds"))
    if continuing and existing is None:
        raise FileNotFoundError(f"{run}: nothing to resume (no splits.json with folds)")
    # kept: the run goes on (a resume, a restart, another fold started) or nothing asks for new folds
    keep = existing is not None and (continuing or bool(started) or (folds is None and not given_folds))
    if given_folds and keep and not _same_folds(given, existing):
        raise ValueError(f"{run}: holds a folds run on other folds than {splits_file}; choose another --out")
    if keep:
        splits = existing
    elif given_folds:
        splits = given
    else:
        if folds is None:
            raise ValueError("--fold needs --folds K (the number of folds), or --splits with folds")
        base = {key: value for key, value in (given or base_splits()).items() if key not in _FOLD_KEYS}
        splits = data.with_folds(base, folds, seed, strata(base))
    count = len(splits["folds"])
    if folds is not None and folds != count:
        raise ValueError(f"--folds {folds}: {splits_file if given and given.get('folds') else target} holds "
                         f"{count} folds; drop --folds or give {count}")
    if fold is not None and (not isinstance(fold, int) or not 0 <= fold < count):
        raise ValueError(f"--fold {fold}: expected a fold in 0..{count - 1}")
    if not continuing:
        taken = [index for index in ([fold] if fold is not None else range(count)) if index in started]
        if taken:
            raise FileExistsError(f"{fold_dir(run, taken[0])}: fold {taken[0]} already holds a run; resume the "
                                  f"folds run with --resume {run} or choose another --out")
    if existing is None or splits is not existing:
        atomic_write_text(target, data.splits_text(splits, target))
    return splits


def cross_validate(kind: str, dataset: str, data_root: str | Path | None, out: str | Path | None,
                   context: DistributedContext, train: TrainFold, *, folds: int | None, fold: int | None,
                   seed: int, resume: bool, splits_file: Any, val_fraction: float | None,
                   data_options: Mapping[str, Any], prepare_options: Mapping[str, Any]) -> dict[str, Any]:
    """Train the folds (all, or ``fold``) of the folds run ``out`` (default ``runs/DATASET/KIND-TIME``)
    with ``train`` and, once every fold is done, write the cross-validated scores.

    ``data_options``: the data set's options; ``prepare_options``: what else the training's
    datasets are made with (``image_size``, ``skip_bad``), so the cases read for the strata are
    the ones the folds train on. Returns ``{"out_dir", "folds": {i: fold result}, "metrics": the
    cv_metrics.json content, or None while folds are missing}``.
    """
    run = Path(broadcast_object(str(out or default_run_dir(kind, dataset)), context))
    restarted = elastic.group_restarted(gather_objects(elastic.restart_count(), context))
    # a torchrun restart continues the run it restarted once its folds exist (before: afresh)
    continuing = bool(resume or (restarted and run_folds(run)))
    verify_data(dataset, data_root, context, prepare_options.get("skip_bad", False), **data_options)  # not per fold

    def base_splits() -> dict:
        return data.default_splits(dataset, data_root, seed, val_fraction, **data_options)

    def strata(base: dict) -> Mapping[str, Hashable]:
        return foreground_strata(dataset, data_root, base, seed, **data_options, **prepare_options)

    splits = on_rank_zero(context, lambda: prepare_fold_splits(run, folds, fold, seed, continuing, splits_file,
                                                               base_splits, strata))
    count = len(splits["folds"])
    results: dict[int, dict] = {}
    for index in [fold] if fold is not None else range(count):
        folder = fold_dir(run, index)
        if continuing and (folder / "metrics.json").is_file():
            say(context, f"fold {index} of {count}: done, kept ({folder / 'metrics.json'})")
            continue
        again = bool(resume) and (folder / "checkpoint.pt").is_file()
        fold_cases = splits["folds"][index]
        say(context, f"fold {index} of {count}: {len(fold_cases['train'])} / {len(fold_cases['val'])} / "
                     f"{len(fold_cases['test'])} train / val / test cases -> {folder}"
                     + (" (resumed)" if again else ""))
        results[index] = train(folder, data.fold_splits(splits, index), again)
    summary = on_rank_zero(context, lambda: write_cv_metrics(run) if _all_done(run, count) else None)
    barrier(context)
    if summary is not None:
        say(context, f"{cv_line(summary)} -> {run / 'cv_metrics.json'}")
    else:
        say(context, f"folds {', '.join(map(str, _done(run, count)))} of {count} done; cv_metrics.json follows "
                     "the last fold")
    return {"out_dir": run, "folds": results, "metrics": summary}


def _done(run: Path, count: int) -> list[int]:
    return [index for index in range(count) if (fold_dir(run, index) / "metrics.json").is_file()]


def _all_done(run: Path, count: int) -> bool:
    return len(_done(run, count)) == count


__all__ = ["TrainFold", "cross_validate", "folds_requested", "foreground_strata", "prepare_fold_splits"]
