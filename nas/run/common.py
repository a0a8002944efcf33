"""What every command shares: the run directory (checked before anything is written, resumed
by itself after a torchrun restart), the run's ``splits.json`` and ``skipped.json``,
sample-data defaults and progress messages."""
from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import data
from nas.train import elastic
from nas.train.distributed import DistributedContext, barrier, broadcast_object, gather_objects
from nas.train.files import OutputDirectoryError, atomic_write_text, check_output_dir, remove_orphaned_temp_files
from nas.train.optional import require_package
from nas.train.settings import SettingError, require_number

#: What a run writes into its directory besides ``checkpoint.pt``. A fresh run in a directory
#: that holds some of them but no checkpoint (an earlier start that failed or was killed
#: before its first epoch ended) replaces them all, so nothing of that start is reused.
RUN_FILES = ("splits.json", "skipped.json", "log.csv", "alphas.json", "genotype.json",
             "metrics.json", "best.pt", "fingerprint.json", "test_cases.csv",
             "test_summary.csv", "figures", "tensorboard")


def say(context: DistributedContext, message: str) -> None:
    """Print a progress line on rank 0 only."""
    if context.is_main:
        print(message, flush=True)


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one line: its type and its message with whitespace collapsed."""
    text = " ".join(str(error).split())
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def uses_sample(dataset: str, data_root: str | Path | None) -> bool:
    """Whether a command runs on the bundled sample data (no root, or a root written by
    ``data.sample``), which gets the data set's small sample sizes."""
    return data_root is None or data.is_sample(Path(data_root).expanduser(), dataset)


def default_image_size(dataset: str, data_root: str | Path | None) -> int | None:
    """The data set's 2D side: its real size, or the sample data's; None where the training
    cases decide it (a data set of the user's: planned from its fingerprint)."""
    preset = data.get_preset(dataset)
    return preset.sample_image_size if uses_sample(dataset, data_root) else preset.image_size


#: Stands in for a size the training cases will decide, so every other setting is checked
#: before the (long) planning reads them; the planned size replaces it.
PLANNED_SIZE = 256


def verify_data(dataset: str, data_root: str | Path | None, context: DistributedContext,
                **options: Any) -> None:
    """The integrity check of a data set of the user's before anything trains (nnU-Net's
    verify_dataset_integrity): every case is read once and a failing data set is refused in
    one line naming the failing cases. The seed's data sets are checked as they are prepared."""
    if dataset in data.ROOT_SOURCES:
        _on_rank_zero(context, lambda: data.verify_dataset(dataset, data_root, **options) and None)


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
    from nas.presets import LOSS_FOR_TARGET, closest_seed_dataset

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
    from nas import losses
    from nas.presets import ACTIVATION_FOR_TARGET

    activation = losses.activation_of(loss)
    wanted = ACTIVATION_FOR_TARGET.get(target)
    if target != "binary" and wanted is not None and activation != wanted:
        fitting = [name for name in losses.list_losses() if losses.activation_of(name) == wanted]
        raise ValueError(f"--loss {loss} trains a {activation} output; the {target} target is "
                         f"learnt through a {wanted} ({', '.join(fitting)})")


def check_val_fraction(val_fraction: float) -> None:
    require_number("val_fraction", val_fraction, below=1.0)


def default_run_dir(kind: str, dataset: str) -> Path:
    """``runs/DATASET/KIND-TIME``; under torchrun with ``--max-restarts``, ``KIND-RUNID``
    instead, which a restarted worker finds again (the time would name a new directory)."""
    if elastic.restarts_allowed() and elastic.run_id():
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in elastic.run_id())
        return Path("runs") / dataset / f"{kind}-{name}"
    return Path("runs") / dataset / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def _on_rank_zero(context: DistributedContext, check: Callable[[], Any]) -> Any:
    """Run ``check`` on rank 0 and hand its result, or the error it raised, to every rank, so
    all ranks fail together with the same message instead of waiting for each other."""
    outcome: tuple[str, Any] = ("ok", None)
    if context.is_main:
        try:
            outcome = ("ok", check())
        except (OSError, ValueError, OutputDirectoryError) as error:
            outcome = ("error", error)
    kind, value = broadcast_object(outcome, context)
    if kind == "error":
        raise value
    return value


def run_directory(kind: str, dataset: str, out: str | Path | None, context: DistributedContext,
                  resume: bool) -> Path:
    """The run directory (rank 0's choice on every rank), ready before anything is written:
    writable with room to spare, its orphaned temporary files removed. A fresh run refuses a
    directory that holds a run (a ``checkpoint.pt``) and replaces the files of an earlier start
    that never reached one; ``resume`` needs that checkpoint."""
    path = Path(broadcast_object(str(out or default_run_dir(kind, dataset)), context))

    def prepare() -> list[str]:
        if resume and not (path / "checkpoint.pt").is_file():
            raise FileNotFoundError(f"{path}: nothing to resume (no checkpoint.pt)")
        if not resume and (path / "checkpoint.pt").exists():
            raise FileExistsError(f"{path}: already holds a run; resume it with --resume {path} "
                                  "or choose another --out")
        check_output_dir(path)
        remove_orphaned_temp_files(path)
        stale = [] if resume else [name for name in RUN_FILES if (path / name).exists()]
        for name in stale:
            target = path / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        return stale

    stale = _on_rank_zero(context, prepare)
    if stale:
        say(context, f"note: {path} held {', '.join(stale)} of an earlier start that stopped "
                     "before its first checkpoint; this run replaces them")
    return path


def start_run(kind: str, dataset: str, out: str | Path | None, context: DistributedContext,
              resume: bool, settings: Mapping[str, Any]) -> tuple[Path, bool]:
    """The run directory as :func:`run_directory` makes it, and whether the run resumes:
    ``resume`` (``--resume``), or implied when torchrun restarted the worker group and the
    directory holds this run's checkpoint (same torchrun run id, same ``settings``: the run's
    config as a dict). Another run's checkpoint is refused; a restart before the first
    checkpoint starts afresh. Under a process group it also checks that every rank sees the
    same directory (the output folder must be shared by the nodes)."""
    path = Path(broadcast_object(str(out or default_run_dir(kind, dataset)), context))
    restarted = elastic.group_restarted(gather_objects(elastic.restart_count(), context))
    if restarted and not resume:
        identity = elastic.run_identity(settings)
        position = _on_rank_zero(context, lambda: elastic.auto_resume(path / "checkpoint.pt",
                                                                      identity, restarted))
        resume = position is not None
        where = ("no checkpoint was written yet: starting afresh" if position is None else
                 f"resuming from its checkpoint at epoch {position['epoch'] + 2}, step "
                 f"{position['step']}" if position["step"] else
                 f"resuming from its checkpoint at the end of epoch {position['epoch'] + 1}")
        say(context, f"torchrun restarted the workers (restart {restarted}): {path}: {where}")
    path = run_directory(kind, dataset, path, context, resume)
    check_shared_directory(path, context)
    return path, resume


def check_shared_directory(path: Path, context: DistributedContext, wait_seconds: float = 10.0
                           ) -> None:
    """Every rank sees the file rank 0 writes into ``path``, or all fail naming the hosts that
    do not: rank 0 writes the run's files, every rank reads ``splits.json`` and the
    checkpoints, so on several machines the run directory must be on shared storage."""
    if not context.enabled:
        return
    token = broadcast_object(secrets.token_hex(8), context)
    probe = path / f".shared-probe-{token}.tmp"  # a killed run's probe goes with the temp files
    if context.is_main:
        probe.write_bytes(b"")
    barrier(context)
    deadline = time.monotonic() + wait_seconds
    while not probe.exists() and time.monotonic() < deadline:  # network file systems may lag
        time.sleep(0.2)
    seen = gather_objects((probe.exists(), socket.gethostname()), context)
    barrier(context)
    if context.is_main:
        probe.unlink(missing_ok=True)
    blind = sorted({host for visible, host in seen if not visible})
    if blind:
        raise OSError(f"{path}: the run directory is not shared: the ranks on {', '.join(blind)} "
                      f"do not see the file rank 0 (on {seen[0][1]}) wrote there; every node must "
                      "see the same --out (and --data-root), e.g. on a network file system")


def prepare_splits(dataset: str, data_root, out_dir: Path, seed: int, val_fraction: float,
                   context: DistributedContext, splits_file: str | Path | None = None,
                   resume: bool = False, **options: Any) -> Path:
    """The run's ``splits.json`` (case lists, seeded), or a copy of ``splits_file``, written
    by rank 0, so that every later step (and a later retrain) uses exactly these cases. A
    resumed run keeps its own."""
    target = out_dir / "splits.json"

    def write() -> None:
        if resume and target.is_file():
            return
        if splits_file is not None:
            splits = data.load_splits(splits_file)
        else:
            splits = data.get_dataset(dataset, data_root, "train", seed,
                                      val_fraction=val_fraction, **options).splits
        atomic_write_text(target, data.splits_text(splits, target))

    _on_rank_zero(context, write)
    barrier(context)
    return target


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


def check_tensorboard(enabled: bool) -> None:
    """``--tensorboard`` without the package fails now, in one line, before any data is read."""
    if enabled:
        require_package("tensorboard", "--tensorboard", "tensorboard")


@contextlib.contextmanager
def tensorboard_callback(enabled: bool, out_dir: Path, context: DistributedContext,
                         pictures: bool = True) -> Iterator[Callable[[int, dict], None] | None]:
    """The ``on_epoch_end`` callback of ``--tensorboard`` (rank 0; ``RUN/tensorboard/``), or None;
    its event file is closed when the block ends."""
    if not (enabled and context.is_main):
        yield None
        return
    from nas.pictures.tensorboard import TensorBoardLogger

    with TensorBoardLogger(Path(out_dir) / "tensorboard", pictures=pictures) as logger:
        yield logger


def skipped_note(count: int) -> str:
    """The closing summary's part about skipped cases."""
    return f"; {count} case(s) skipped (skipped.json)" if count else ""


__all__ = ["RUN_FILES", "SettingError", "check_loss_fits", "check_shared_directory", "check_tensorboard",
           "check_val_fraction",
           "default_image_size", "default_run_dir", "one_line", "prepare_splits",
           "record_skipped", "run_directory", "say", "skipped_note", "start_run",
           "tensorboard_callback", "uses_sample"]
