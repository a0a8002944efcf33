"""What every command shares: the run directory, the run's ``splits.json``, sample-data
defaults and progress messages (rank 0 only)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import data
from nas.train.distributed import DistributedContext, barrier, broadcast_object


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


def default_run_dir(kind: str, dataset: str) -> Path:
    return Path("runs") / dataset / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_directory(kind: str, dataset: str, out: str | Path | None, context: DistributedContext,
                  resume: bool) -> Path:
    """The run directory (rank 0's choice on every rank). A fresh run refuses a directory that
    already holds a run, so nothing computed is overwritten by accident."""
    path = Path(broadcast_object(str(out or default_run_dir(kind, dataset)), context))
    if resume and not (path / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{path}: nothing to resume (no checkpoint.pt)")
    if not resume and (path / "checkpoint.pt").exists():
        raise FileExistsError(f"{path}: already holds a run; resume it with --resume {path} "
                              "or choose another --out")
    return path


def prepare_splits(dataset: str, data_root, out_dir: Path, seed: int, val_fraction: float,
                   context: DistributedContext, splits_file: str | Path | None = None,
                   **options: Any) -> Path:
    """Write the run's ``splits.json`` (case lists, seeded) on rank 0, or copy the given one,
    so that every later step (and a later retrain) uses exactly these cases."""
    target = out_dir / "splits.json"
    if context.is_main and not target.exists():
        if splits_file is not None:
            splits = data.load_splits(splits_file)
        else:
            splits = data.get_dataset(dataset, data_root, "train", seed,
                                      val_fraction=val_fraction, **options).splits
        out_dir.mkdir(parents=True, exist_ok=True)
        data.save_splits(target, splits)
    barrier(context)
    return target
