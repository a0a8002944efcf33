"""``--tensorboard``: the package checked before any data is read, and the ``on_epoch_end``
callback that logs each epoch into ``RUN/tensorboard/``."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

from nas.train.distributed import DistributedContext
from nas.train.optional import require_package


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
    from nas.pictures.tensorboard import TensorBoardLogger  # matplotlib and tensorboard: on use

    with TensorBoardLogger(Path(out_dir) / "tensorboard", pictures=pictures) as logger:
        yield logger


__all__ = ["check_tensorboard", "tensorboard_callback"]
