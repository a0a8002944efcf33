"""The folder ``lwnas predict`` writes into (``--output``): never one of its inputs' folders, and
described by a manifest, ``predictions.json``, so that predictions of two checkpoints never mix.

The manifest names the checkpoint (a file, or a run directory whose ``*.pt`` files make an
ensemble) with a hash of its contents, the input, every case's input files, when the prediction
started and finished, and the files it wrote there. A folder holding another checkpoint's
manifest is refused unless ``--overwrite``, which first removes the files that manifest lists (its
masks, probability maps and metrics tables), so nothing of the other checkpoint stays beside the
new predictions; a folder without a manifest is refused only where a prediction would replace a
file in it. The same checkpoint may predict into its folder again (more cases, another run).
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import nas
from nas.metrics import table_names
from nas.train import atomic_write_text, check_output_dir
from nas.train.files import hash_file

from .prediction_cases import METRICS_PREFIX

#: The manifest's name in the output folder.
MANIFEST = "predictions.json"
MANIFEST_FORMAT = 1
_APART = "expected a folder apart from the inputs (predictions are written under the inputs' names)"


def checkpoint_digest(checkpoint: str | os.PathLike) -> str:
    """sha256 of a checkpoint's bytes; of a run directory, of every ``*.pt`` file under it (by its
    relative path), so that retrained weights under the same name count as another checkpoint."""
    path = Path(checkpoint)
    files = sorted(path.rglob("*.pt")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        hash_file(file, digest)
    return digest.hexdigest()


def check_apart_from_inputs(output: Path, input_path: Path, inputs: Iterable[Path]) -> None:
    """Refuse an ``output`` folder that is the ``--input`` folder, an input (file or folder: a
    DICOM series, a BraTS case, a label folder) or the folder an input lies in: predictions are
    written there under the inputs' names and would replace them."""
    where = output.resolve()
    if where == Path(input_path).resolve():
        raise ValueError(f"--output {output}: is the --input folder; {_APART}")
    inputs = list(inputs)
    for item in inputs:
        if where == Path(item).resolve():
            raise ValueError(f"--output {output}: is the input {item}; {_APART}")
    for item in inputs:
        if where == Path(item).resolve().parent:
            raise ValueError(f"--output {output}: holds the input {item}; {_APART}")


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _read_manifest(output: Path) -> dict[str, Any] | None:
    path = output / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable prediction manifest ({error}); choose another --output, "
                         "or remove it") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise ValueError(f"{path}: not a prediction manifest (no list of files); choose another --output, or "
                         "remove it")
    return manifest


def _listing(output: Path) -> dict[str, tuple[int, int]]:
    """Every visible file of ``output`` with its size and modification time."""
    if not output.is_dir():
        return {}
    return {entry.name: (entry.stat().st_size, entry.stat().st_mtime_ns) for entry in output.iterdir()
            if entry.is_file() and not entry.name.startswith(".") and entry.name != MANIFEST}


def _remove_listed(output: Path, names: Iterable[Any]) -> None:
    for name in names:
        if isinstance(name, str) and name == Path(name).name:  # a file of this folder, nothing else
            (output / name).unlink(missing_ok=True)


@contextlib.contextmanager
def prediction_folder(output: str | os.PathLike, checkpoint: str | os.PathLike, input_path: str | os.PathLike,
                      inputs: Mapping[str, Sequence[Path]], targets: Sequence[str], *, overwrite: bool = False,
                      labels: Sequence[Path] = (), details: Mapping[str, Any] | None = None) -> Iterator[Path]:
    """The output folder of a prediction of ``checkpoint`` (a file or a run directory) on the cases
    ``inputs`` (case -> its input files or folder) found under ``input_path``, checked and created
    before anything is written, as the block's value; the block writes the predictions.

    Refuses (one line): a folder among the inputs or their ``labels``
    (:func:`check_apart_from_inputs`); a folder holding another checkpoint's predictions, or,
    without a manifest, a file a prediction would replace (``targets``: the names of the masks;
    the metrics tables), unless ``overwrite``. Writes the manifest (``details``: settings worth
    recording, such as ``tta``) before the block and again after it, with the files it wrote."""
    output = Path(output)
    check_apart_from_inputs(output, Path(input_path), [path for files in inputs.values() for path in files]
                            + list(labels))
    digest = checkpoint_digest(checkpoint)
    manifest = _read_manifest(output)
    replacing = manifest is not None and manifest.get("checkpoint_sha256") != digest
    kept = [] if manifest is None or replacing else [name for name in manifest["files"] if isinstance(name, str)]
    if replacing and not overwrite:
        raise FileExistsError(f"--output {output}: holds the predictions of another checkpoint ("
                              f"{manifest.get('checkpoint')}, {manifest.get('started')}); choose another --output, "
                              "or pass --overwrite to replace them")
    elif manifest is None and not overwrite:
        for name in [*targets, *table_names(METRICS_PREFIX)]:
            if (output / name).exists():
                raise FileExistsError(f"--output {output}: holds {output / name}, which lwnas predict did not "
                                      f"write (no {MANIFEST}); choose another --output, or pass --overwrite to "
                                      "replace it")
    check_output_dir(output, min_free_mb=1.0)
    if replacing:  # another checkpoint's predictions, replaced: none of its files stays
        _remove_listed(output, manifest["files"])
    record = {"format": MANIFEST_FORMAT, "lwnas_version": nas.__version__,
              "checkpoint": str(Path(checkpoint).resolve()), "checkpoint_sha256": digest,
              "input": str(Path(input_path).resolve()),
              "inputs": {case: [str(Path(path).resolve()) for path in files] for case, files in inputs.items()},
              **dict(details or {}), "started": _now(), "finished": None, "files": kept}
    atomic_write_text(output / MANIFEST, json.dumps(record, indent=1) + "\n")
    before = _listing(output)
    finished = False
    try:
        yield output
        finished = True
    finally:  # what was written so far is recorded even when a case crashed the prediction
        written = [name for name, stat in _listing(output).items() if before.get(name) != stat]
        record.update(files=sorted({*kept, *written}), finished=_now() if finished else None)
        atomic_write_text(output / MANIFEST, json.dumps(record, indent=1) + "\n")


__all__ = ["MANIFEST", "MANIFEST_FORMAT", "check_apart_from_inputs", "checkpoint_digest", "prediction_folder"]
