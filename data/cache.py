"""On-disk cache of preprocessed arrays, one folder per case.

A case folder holds `image.npy`, `label.npy` (and `foreground.npy` for
volumes) plus `meta.json`. Its name is a hash of the preprocessing settings,
the case id and the size and modification time of every source file, so a
changed setting or an edited file gets a new folder and stale arrays are
never served. A folder is written beside under a name no other process on
any host can pick (`partial_name`) and renamed into place; the first complete
writer wins, so a cache on a folder several machines share is safe. The
arrays are opened as read-only memory maps, lazily and once per process, so
DataLoader workers share the page cache and no file handle crosses a fork.

Location: `<cache root>/preprocessed/<dataset>/`; the cache root is
`cache_dir`, else `$LWNAS_CACHE`, else `~/.cache/lwnas`. Delete the folder (or
call `clear_cache`) to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import Any, Iterable

import numpy as np

# Bump when a reader or preprocessing step changes what it writes.
CACHE_VERSION = 1
ENV_VAR = "LWNAS_CACHE"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Root of sample data and preprocessed arrays."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path.home() / ".cache" / "lwnas"


def clear_cache(dataset: str | None = None, cache_dir: str | os.PathLike | None = None) -> None:
    """Delete the preprocessed arrays of one dataset (or all); sample data is kept."""
    target = cache_root(cache_dir) / "preprocessed"
    if dataset is not None:
        target = target / dataset
    shutil.rmtree(target, ignore_errors=True)


def digest(payload: Any) -> str:
    """Short stable hash of JSON-able settings."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def partial_name(name: str) -> str:
    """A temporary sibling name for a folder being written: unique across the processes of
    every host sharing the folder (hostname, pid and a random token: two machines can run a
    writer with the same pid, and a pid is reused after a crash)."""
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:40]
    return f"{name}.partial-{host or 'host'}-{os.getpid()}-{secrets.token_hex(4)}"


def file_signature(paths: Iterable[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of each file: a change to any source invalidates the case."""
    signature = []
    for path in paths:
        stat = path.stat()
        signature.append((str(path), stat.st_size, stat.st_mtime_ns))
    return signature


class CaseCache:
    """Preprocessed cases of one dataset under one set of settings."""

    def __init__(self, folder: Path, settings: dict):
        self.folder = Path(folder)
        self.settings = dict(settings, cache_version=CACHE_VERSION)
        self._pid = None
        self._open: dict[str, dict[str, np.ndarray]] = {}

    def case_folder(self, case: str, sources: Iterable[Path]) -> Path:
        key = digest({"settings": self.settings, "case": case, "sources": file_signature(sources)})
        return self.folder / f"{_safe(case)}-{key}"

    def read_meta(self, case_folder: Path) -> dict | None:
        """The case's meta, or None if it is not cached yet."""
        try:
            meta = json.loads((case_folder / "meta.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return _from_json(meta)

    def write(self, case_folder: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Store a case atomically: written beside, then renamed into place."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = case_folder.with_name(partial_name(case_folder.name))
        partial.mkdir()
        for name, array in arrays.items():
            np.save(partial / f"{name}.npy", np.ascontiguousarray(array))
        # meta.json last: its presence marks a complete folder.
        (partial / "meta.json").write_text(json.dumps(_to_json(meta)))
        try:
            partial.rename(case_folder)
        except OSError:  # another worker, process or host stored it first; keep theirs
            shutil.rmtree(partial, ignore_errors=True)

    def array(self, case_folder: Path, name: str) -> np.ndarray:
        """A cached array as a read-only memory map, opened once per process."""
        if self._pid != os.getpid():
            # Forked into a DataLoader worker: open our own maps.
            self._pid, self._open = os.getpid(), {}
        arrays = self._open.setdefault(str(case_folder), {})
        if name not in arrays:
            arrays[name] = np.load(case_folder / f"{name}.npy", mmap_mode="r")
        return arrays[name]

    def __getstate__(self) -> dict:
        # Memory maps are not sent to spawned workers; they reopen lazily.
        return {**self.__dict__, "_pid": None, "_open": {}}


def _safe(case: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in case)


def _to_json(meta: dict) -> dict:
    return {key: value.tolist() if isinstance(value, np.ndarray) else value for key, value in meta.items()}


def _from_json(meta: dict) -> dict:
    return {key: np.asarray(value) if isinstance(value, list) and value and not isinstance(value[0], str)
            else value for key, value in meta.items()}
