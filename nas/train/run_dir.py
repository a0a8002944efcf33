"""The run directory: chosen once (rank 0's choice on every rank), held by one run at a time,
checked before anything is written, resumed by itself after a torchrun restart, and seen by
every node."""
from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from . import elastic
from .checkpoints import check_resumable, load_checkpoint
from .distributed import DistributedContext, barrier, broadcast_object, gather_objects, on_rank_zero, say
from .files import check_output_dir, not_writable, remove_orphaned_temp_files

#: What a run writes into its directory besides ``checkpoint.pt``. A fresh run in a directory
#: that holds some of them but no checkpoint (an earlier start that failed or was killed
#: before its first epoch ended) replaces them all, so nothing of that start is reused.
RUN_FILES = ("splits.json", "skipped.json", "log.csv", "alphas.json", "genotype.json",
             "metrics.json", "best.pt", "fingerprint.json", "test_cases.csv",
             "test_summary.csv", "figures", "tensorboard")


#: The lock file a run holds its directory by (rank 0 of a job holds it).
LOCK_FILE = ".lock"


class RunInUseError(OSError):
    """The run directory is held by another live run (another process, here or on another host)."""


_held: dict[Path, int] = {}  # run directory -> the open lock file of this process
_held_by = [os.getpid()]  # whose _held it is: a forked child inherits the dict, not the locks
_scopes: list[list[Path]] = []  # per open holding_run_directory block: the locks it took


def _lock(path: Path) -> None:
    """Hold ``path`` for this process (already held by it: nothing to do), or raise
    RunInUseError naming the holder. A POSIX record lock (``fcntl.lockf``): the kernel drops
    it when the holder dies, kill -9 included, and, unlike ``flock``, the processes a run forks
    (loader workers, which can outlive a killed parent for seconds) do not inherit it. Closing
    any descriptor of the file drops it too, so this process opens it once (``_held``)."""
    if _held_by[0] != os.getpid():
        _held.clear()
        _held_by[0] = os.getpid()
    key = path.resolve()
    if key in _held:
        return
    handle = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):  # EAGAIN / EACCES: another process holds it
        with open(handle, closefd=True) as stream:  # the holder wrote who it is
            holder = stream.read().split()
        who = f"pid {holder[0]} on {holder[1]}" if len(holder) == 2 else "another process"
        raise RunInUseError(f"{path}: in use by {who}; wait for that run to end or choose another "
                            "--out") from None
    except OSError as error:  # a file system without locks (ENOLCK): run, but say what is missing
        os.close(handle)
        print(f"note: {path}: its file system cannot lock files ({error.strerror or error}); a second run "
              "started on this directory would not be refused", flush=True)
        return
    os.ftruncate(handle, 0)
    os.write(handle, f"{os.getpid()} {socket.gethostname()}\n".encode())
    _held[key] = handle
    if _scopes:
        _scopes[-1].append(key)


def _unlock(key: Path) -> None:
    # the file stays: unlinking a lock file lets two later starts lock two different files
    handle = _held.pop(key, None)
    if handle is not None:
        os.close(handle)  # closing drops the lock


@contextlib.contextmanager
def holding_run_directory() -> Iterator[None]:
    """Within the block (a command; usable as a decorator), the run directory that
    :func:`run_directory` takes is held until the block ends; outside any block, until the
    process ends. A directory the process already holds is held again without waiting."""
    _scopes.append([])
    try:
        yield
    finally:
        for key in _scopes.pop():
            _unlock(key)


def default_run_dir(kind: str, dataset: str) -> Path:
    """``runs/DATASET/KIND-TIME``; under torchrun with ``--max-restarts``, ``KIND-RUNID``
    instead, which a restarted worker finds again (the time would name a new directory)."""
    if elastic.restarts_allowed() and elastic.run_id():
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in elastic.run_id())
        return Path("runs") / dataset / f"{kind}-{name}"
    return Path("runs") / dataset / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_directory(kind: str, dataset: str, out: str | Path | None, context: DistributedContext,
                  resume: bool) -> Path:
    """The run directory (rank 0's choice on every rank), ready before anything is written:
    held by this run (``RUN/.lock``: another live run there is refused, :class:`RunInUseError`),
    writable with room to spare, its orphaned temporary files removed. A fresh run refuses a
    directory that holds a run (a ``checkpoint.pt``) and replaces the files of an earlier start
    that never reached one; ``resume`` needs that checkpoint."""
    path = Path(broadcast_object(str(out or default_run_dir(kind, dataset)), context))

    def prepare() -> list[str]:
        if resume and not (path / "checkpoint.pt").is_file():
            raise FileNotFoundError(f"{path}: nothing to resume (no checkpoint.pt)")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise not_writable(path, error) from None
        _lock(path)  # before anything is read or removed: another run may be writing here
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

    stale = on_rank_zero(context, prepare)
    if stale:
        say(context, f"note: {path} held {', '.join(stale)} of an earlier start that stopped "
                     "before its first checkpoint; this run replaces them")
    return path


def start_run(kind: str, dataset: str, out: str | Path | None, context: DistributedContext,
              resume: bool, settings: Mapping[str, Any], may_change: Iterable[str] | None = None
              ) -> tuple[Path, bool]:
    """The run directory as :func:`run_directory` makes it, and whether the run resumes:
    ``resume`` (``--resume``), or implied when torchrun restarted the worker group and the
    directory holds this run's checkpoint (same torchrun run id, same ``settings``: the run's
    config as a dict). Another run's checkpoint is refused; a restart before the first
    checkpoint starts afresh. A resumed run with other settings than its checkpoint's (all but
    ``may_change``; None: not checked here) is refused now, before any data is read; a setting
    still None (decided from the data later) is compared when the loop resumes. Under a process
    group it also checks that every rank sees the same directory (the output folder must be
    shared by the nodes)."""
    path = Path(broadcast_object(str(out or default_run_dir(kind, dataset)), context))
    restarted = elastic.group_restarted(gather_objects(elastic.restart_count(), context))
    if restarted and not resume:
        identity = elastic.run_identity(settings)
        position = on_rank_zero(context, lambda: elastic.auto_resume(path / "checkpoint.pt",
                                                                     identity, restarted))
        resume = position is not None
        where = ("no checkpoint was written yet: starting afresh" if position is None else
                 f"resuming from its checkpoint at epoch {position['epoch'] + 2}, step "
                 f"{position['step']}" if position["step"] else
                 f"resuming from its checkpoint at the end of epoch {position['epoch'] + 1}")
        say(context, f"torchrun restarted the workers (restart {restarted}): {path}: {where}")
    path = run_directory(kind, dataset, path, context, resume)
    if resume and may_change is not None:
        given = {key: value for key, value in settings.items() if value is not None}
        checkpoint = path / "checkpoint.pt"
        on_rank_zero(context, lambda: check_resumable(checkpoint, load_checkpoint(checkpoint, mmap=True), given,
                                                     may_change))
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


__all__ = ["LOCK_FILE", "RUN_FILES", "RunInUseError", "check_shared_directory", "default_run_dir",
           "holding_run_directory", "run_directory", "start_run"]
