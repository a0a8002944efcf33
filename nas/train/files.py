"""Crash-safe run files: atomic writes, the run directory's pre-flight check, ``log.csv``.

A file is written to a temporary name in the same directory, flushed, fsynced and renamed over
the target, then the directory is fsynced: a process killed at any moment leaves either the
old complete file or the new complete file, never a torn one.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

#: Temporary files are ``.<name>.<random>.tmp<suffix>``; a start or resume removes orphans.
TEMP_MARKER = ".tmp"


class OutputDirectoryError(RuntimeError):
    """The run directory cannot hold the run's files; raised before any training."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    try:  # make the rename itself durable
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename is still atomic


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that takes a file name (nibabel,
    SimpleITK, PIL); renamed over ``path`` when the block ends without an error, removed
    otherwise. ``suffix`` keeps the ending a library picks its format by (``.nii.gz``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                    suffix=TEMP_MARKER + suffix)
    os.close(handle)
    temp = Path(temp)
    try:
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        yield temp
        with open(temp, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Call ``write(stream)`` on a temp file beside ``path``, then fsync and rename it over."""
    with atomic_path(path) as temp, open(temp, "wb") as stream:
        write(stream)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


def remove_orphaned_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed process left in ``directory`` (from
    :func:`atomic_path`); called at the start of a run, when no writer of it is alive."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for candidate in directory.glob(f".*{TEMP_MARKER}*"):
        if candidate.is_file() and f"{TEMP_MARKER}" in candidate.name:
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def not_writable(path: str | os.PathLike, error: OSError) -> OutputDirectoryError:
    """The error of a run directory that cannot be created or written."""
    return OutputDirectoryError(f"{path}: run directory is not writable ({error.strerror or error})")


def check_output_dir(path: str | os.PathLike, min_free_mb: float = 50.0) -> Path:
    """Create the run directory and prove it is writable with room to spare, so a full disk or
    a read-only mount fails now rather than at the first checkpoint."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write_probe"
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as error:
        raise not_writable(path, error) from None
    free_mb = shutil.disk_usage(path).free / 2**20
    if free_mb < min_free_mb:
        raise OutputDirectoryError(f"{path}: only {free_mb:.0f} MB free, need at least "
                                   f"{min_free_mb:.0f} MB for checkpoints")
    return path


def check_new_file(path: str | os.PathLike, flag: str, overwrite: bool, example: str) -> Path:
    """A file a command is to write, given as ``flag``: a folder there is refused (``example``: a
    file name to suggest in it), and an existing file unless ``overwrite``, before any work."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{flag} {path}: is a folder; expected the file to write, e.g. {path / example}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{flag} {path}: exists; choose another {flag}, or pass --overwrite to replace it")
    return path


def hash_file(path: str | os.PathLike, hasher: Any = None) -> Any:
    """``hasher`` (default a new SHA-256) updated with the file's bytes, read a MiB at a time."""
    hasher = hashlib.sha256() if hasher is None else hasher
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            hasher.update(block)
    return hasher


def write_log(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Rewrite ``log.csv`` from the full history (atomic): a resumed run rewrites the rows it
    restored from the checkpoint, so a crash between log and checkpoint cannot duplicate rows."""
    return atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
