"""The record of one stage of ``lwnas run``: ``RUN/STAGE/stage.json`` with the stage's settings,
the digests of the files it read, the files it wrote, whether it finished and how long it took.

A stage is skipped when its record says done, its settings and inputs are the ones asked for now
and its outputs are all there; it resumes when its record is there but not done (a crash or a
``kill`` in it); a record of other settings or inputs is refused in one line naming what differs
(``name: old -> new``), as ``--resume`` refuses a checkpoint of other settings.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from nas.train.files import atomic_write_text, hash_file

RECORD_NAME = "stage.json"
FORMAT_VERSION = 1
#: What a stage's settings look like when a flag was not given (the command's preset applies).
UNSET = "unset (the preset's)"


def changed_settings(recorded: Mapping[str, Any], wanted: Mapping[str, Any],
                     allowed: Iterable[str] = ()) -> list[str]:
    """Each setting that differs between ``recorded`` and ``wanted`` (nested mappings by dotted
    name) as ``name: old -> new``, but for the ``allowed`` names (those a run may change, e.g.
    the device); a name missing on one side counts as unset."""
    allowed = set(allowed)
    changes = []
    for key in sorted(set(recorded) | set(wanted)):
        if key in allowed:
            continue
        old, new = recorded.get(key), wanted.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            changes += [f"{key}.{change}" for change in changed_settings(old, new, allowed)]
        elif _plain(old) != _plain(new):
            changes.append(f"{key}: {_shown(old)} -> {_shown(new)}")
    return changes


def _plain(value: Any) -> Any:
    """A value as JSON holds it (tuples are lists), so a recorded value equals the one asked."""
    return json.loads(json.dumps(value, default=str))


def _shown(value: Any) -> str:
    return UNSET if value is None else json.dumps(_plain(value))


def digest(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (what a later stage records of the files it read)."""
    return hash_file(path).hexdigest()


@dataclasses.dataclass(frozen=True)
class StageRecord:
    """One stage's ``stage.json``; paths relative to the run directory."""

    stage: str
    settings: dict[str, Any]
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)  # path -> SHA-256
    outputs: tuple[str, ...] = ()
    done: bool = False
    seconds: float | None = None
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)  # what a user should know (a choice made)
    version: int = FORMAT_VERSION

    def missing_outputs(self, run_dir: Path) -> list[str]:
        return [name for name in self.outputs if not (run_dir / name).exists()]


def record_path(run_dir: Path, stage: str) -> Path:
    return run_dir / stage / RECORD_NAME


def read_record(run_dir: Path, stage: str) -> StageRecord | None:
    """The stage's record, None where it never started; an unreadable one is refused."""
    path = record_path(run_dir, stage)
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
        values["outputs"] = tuple(values.get("outputs", ()))
        return StageRecord(**values)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: not a stage record of lwnas run ({error}); remove {path.parent} "
                         "to run the stage again") from None


def write_record(run_dir: Path, record: StageRecord) -> Path:
    """Write the record atomically (a kill leaves the old one or the new one)."""
    path = record_path(run_dir, record.stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(_plain(dataclasses.asdict(record)), indent=2) + "\n")


__all__ = ["RECORD_NAME", "StageRecord", "UNSET", "changed_settings", "digest", "read_record",
           "record_path", "write_record"]
