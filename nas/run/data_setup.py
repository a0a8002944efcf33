"""Data set-up shared by the commands: the integrity check of a user's data set, the preset a
data set starts from, the run's ``splits.json``, ``skipped.json`` and ``fingerprint.json``, and
the identity of its data (what a resumed run must be given again)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import data
from nas import losses
from nas.presets import ACTIVATION_FOR_TARGET, LOSS_FOR_TARGET, closest_seed_dataset
from nas.train.checkpoints import check_resumable, load_checkpoint
from nas.train.distributed import DistributedContext, barrier, on_rank_zero
from nas.train.files import atomic_write_text
from nas.train.settings import require_number

#: (data set, root, options) whose integrity check passed in this process: ``lwnas run`` checks,
#: searches and retrains three networks on one data set, and each check reads every case.
_VERIFIED: set[tuple[str, str | None, str]] = set()


def verify_data(dataset: str, data_root: str | Path | None, context: DistributedContext,
                skip_bad: bool = False, **options: Any) -> None:
    """The integrity check of a data set of the user's before anything trains (nnU-Net's
    verify_dataset_integrity): every case is read once and a failing data set is refused in
    one line naming the failing cases; with ``skip_bad`` the readers leave failing cases out
    (listed in ``skipped.json``) instead. The seed's data sets are checked as they are prepared.
    A data set is checked once per process."""
    if dataset not in data.ROOT_SOURCES or skip_bad:
        return
    root = None if data_root is None else str(Path(data_root).expanduser().resolve())
    key = (dataset, root, json.dumps(options, sort_keys=True, default=str))
    if key not in _VERIFIED:
        on_rank_zero(context, lambda: data.verify_dataset(dataset, data_root, **options) and None)
        _VERIFIED.add(key)


def crops_per_case(batch_size: int, context: DistributedContext, cases: int) -> int:
    """Random 3D crops per case and epoch: enough for one batch per process (``batch_size`` x
    processes) from a split of ``cases`` cases, at least one (real data sets: one). A few cases
    (the sample data, a fold of a small set) would otherwise give an epoch without a step."""
    return max(1, math.ceil(batch_size * context.world_size / max(cases, 1)))


def write_fingerprint(out_dir: Path, dataset_or_none: Any, context: DistributedContext) -> None:
    """``fingerprint.json`` of the training cases (data sets planned from one)."""
    fingerprint = getattr(dataset_or_none, "fingerprint", None)
    if fingerprint is not None and context.is_main:
        atomic_write_text(out_dir / "fingerprint.json", json.dumps(fingerprint, indent=1) + "\n")


def data_settings(dataset: str, data_root: str | Path | None, overrides: dict[str, Any],
                  preset_names: Any, data_options: dict[str, Any] | None = None
                  ) -> tuple[Any, str]:
    """The data set's facts, and the name of the seed preset its search or retrain starts
    from (its own, or the closest seed data set's); sets the loss of its kind of target when
    ``--loss`` is not given."""
    facts = data.dataset_facts(dataset, data_root, **(data_options or {}))
    preset = dataset if dataset in preset_names else closest_seed_dataset(
        facts.channels, facts.planar, facts.spatial_dims)
    if overrides.get("loss") is None and facts.target != "binary":
        overrides["loss"] = LOSS_FOR_TARGET[facts.target]
    return facts, preset


def check_loss_fits(loss: str, target: str) -> None:
    """A loss of the output the data trains: sigmoid channels for regions, a softmax over the
    classes for class indices (a binary mask takes either: a softmax loss reads one channel as
    the foreground logit)."""
    activation = losses.activation_of(loss)
    wanted = ACTIVATION_FOR_TARGET.get(target)
    if target != "binary" and wanted is not None and activation != wanted:
        fitting = [name for name in losses.list_losses() if losses.activation_of(name) == wanted]
        raise ValueError(f"--loss {loss} trains a {activation} output; the {target} target is "
                         f"learnt through a {wanted} ({', '.join(fitting)})")


def check_val_fraction(val_fraction: float | None) -> None:
    """``--val-fraction`` (None: the data set's, ``data.get_preset(name).val_fraction``)."""
    if val_fraction is not None:
        require_number("val_fraction", val_fraction, below=1.0)


def prepare_splits(dataset: str, data_root, out_dir: Path, seed: int, val_fraction: float | None,
                   context: DistributedContext, splits_file: str | Path | Mapping[str, Any] | None = None,
                   resume: bool = False, **options: Any) -> Path:
    """The run's ``splits.json`` (case lists, seeded), or a copy of ``splits_file`` (a file, or
    the splits themselves: a fold's), written by rank 0, so that every later step (and a later
    retrain) uses exactly these cases. A resumed run keeps its own."""
    target = out_dir / "splits.json"

    def write() -> None:
        if resume and target.is_file():
            return
        if isinstance(splits_file, Mapping):
            splits = dict(splits_file)
        elif splits_file is not None:
            splits = data.load_splits(splits_file)
        else:
            splits = data.get_dataset(dataset, data_root, "train", seed,
                                      val_fraction=val_fraction, **options).splits
        atomic_write_text(target, data.splits_text(splits, target))

    on_rank_zero(context, write)
    barrier(context)
    return target


def run_data_identity(dataset: str, data_root: str | Path | None, splits: Path, out_dir: Path,
                      context: DistributedContext, resume: bool, **data_options: Any) -> dict[str, Any]:
    """The identity of the run's data (``data.data_identity`` of the cases of ``splits``), which
    its checkpoints record; a resumed run's is checked against its checkpoint's now, before any
    case is prepared, so that a run is never continued on other files."""
    def identify() -> dict[str, Any]:
        identity = data.data_identity(dataset, data_root, data.load_splits(splits), **data_options)
        if resume:
            checkpoint = out_dir / "checkpoint.pt"
            check_resumable(checkpoint, load_checkpoint(checkpoint, mmap=True), data=identity)
        return identity

    return on_rank_zero(context, identify)


def record_skipped(out_dir: Path, datasets: Mapping[str, Any], context: DistributedContext
                   ) -> int:
    """Report every case ``--skip-bad`` left out: one line each (case, file, reason), listed in
    ``skipped.json``, and removed from ``splits.json`` so the splits name the cases used.
    Returns how many were skipped."""
    skipped = [{"case": case, "split": split, "problem": problem}
               for split, dataset in datasets.items() for case, problem in dataset.skipped]
    if skipped and context.is_main:
        for entry in skipped:
            print(f"skipped {entry['split']} case {entry['case']}: {entry['problem']}",
                  flush=True)
        atomic_write_text(out_dir / "skipped.json", json.dumps(skipped, indent=2) + "\n")
        splits_path = out_dir / "splits.json"
        splits = data.without_cases(data.load_splits(splits_path), {e["case"] for e in skipped})
        atomic_write_text(splits_path, data.splits_text(splits, splits_path))
    barrier(context)
    return len(skipped)


def skipped_note(count: int) -> str:
    """The closing summary's part about skipped cases."""
    return f"; {count} case(s) skipped (skipped.json)" if count else ""


__all__ = ["check_loss_fits", "check_val_fraction", "data_settings", "prepare_splits", "record_skipped",
           "run_data_identity", "skipped_note", "verify_data", "write_fingerprint"]
