"""What every command shares: the run directory (checked before anything is written), the
run's ``splits.json`` and ``skipped.json``, sample-data defaults and progress messages."""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import data
from nas.train.distributed import DistributedContext, barrier, broadcast_object
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


def default_image_size(dataset: str, data_root: str | Path | None) -> int:
    """The data set's 2D side: its real size, or the sample data's."""
    preset = data.get_preset(dataset)
    return preset.sample_image_size if uses_sample(dataset, data_root) else preset.image_size


def check_val_fraction(val_fraction: float) -> None:
    require_number("val_fraction", val_fraction, below=1.0)


def default_run_dir(kind: str, dataset: str) -> Path:
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


__all__ = ["RUN_FILES", "SettingError", "check_tensorboard", "check_val_fraction", "default_image_size",
           "default_run_dir", "one_line", "prepare_splits", "record_skipped", "run_directory",
           "say", "skipped_note", "tensorboard_callback", "uses_sample"]
