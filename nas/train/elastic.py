"""Elastic restarts: a worker group torchrun restarts resumes its own run by itself.

Under ``torchrun --max-restarts K`` a failed worker (killed, out of memory, a lost node) makes
torchrun stop the group and start every worker again with the same command line and
``TORCHELASTIC_RESTART_COUNT`` one higher. A restarted command must then continue from the
run's last complete ``checkpoint.pt`` rather than start over (or refuse the directory as one
that holds a run). It may do so only with a checkpoint of *this* run: each checkpoint records
its run identity, torchrun's run id (``TORCHELASTIC_RUN_ID``: ``--rdzv-id``, or a fresh id per
``--standalone`` launch) and a hash of the settings, and a restart refuses any other.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from .checkpoints import load_checkpoint

#: Environment variables torchrun's agent sets for every worker it starts.
RESTART_COUNT, MAX_RESTARTS, RUN_ID = ("TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS",
                                       "TORCHELASTIC_RUN_ID")
#: Settings that do not change what a run computes and may differ between nodes.
UNHASHED_SETTINGS = ("progress", "num_workers")


def _env_int(name: str) -> int:
    try:
        return int(os.environ.get(name, "0"))
    except ValueError:
        return 0


def restart_count() -> int:
    """How often torchrun has restarted this worker's group (0: the first start, or no torchrun).

    A node whose workers were healthy restarts them too when another node's fail, without
    counting it; callers take the largest count over the ranks (:func:`group_restarted`)."""
    return _env_int(RESTART_COUNT)


def restarts_allowed() -> bool:
    """Whether torchrun may restart this worker (``--max-restarts`` above 0)."""
    return _env_int(MAX_RESTARTS) > 0


def run_id() -> str | None:
    """torchrun's id of this job (the same for every node and every restart), None outside it."""
    return os.environ.get(RUN_ID) or None


def group_restarted(restart_counts: list[int]) -> int:
    """The group's restart number from every rank's :func:`restart_count`."""
    return max(restart_counts, default=0)


def settings_digest(settings: Mapping[str, Any]) -> str:
    """A short hash of a run's settings (a config dataclass as a dict), without the ones that
    only change how it is shown or loaded (:data:`UNHASHED_SETTINGS`)."""
    kept = {key: value for key, value in settings.items() if key not in UNHASHED_SETTINGS}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def run_identity(settings: Mapping[str, Any]) -> dict[str, str | None]:
    """What ``checkpoint.pt`` records as ``"run"``: torchrun's run id and the settings' hash."""
    return {"run_id": run_id(), "settings": settings_digest(settings)}


def _describe(identity: Any) -> str:
    if not isinstance(identity, Mapping):
        return "no run identity (written outside torchrun's restarts, or by an older lwnas)"
    return f"run id {identity.get('run_id')!r}, settings {identity.get('settings')}"


def auto_resume(checkpoint: str | os.PathLike, identity: Mapping[str, Any], restarted: int
                ) -> dict[str, int] | None:
    """Whether a command started without ``--resume`` is to resume ``checkpoint``: only in a
    group torchrun restarted (``restarted`` > 0), and only the checkpoint of this run.

    Returns None (start fresh: no restart, or no checkpoint written before the failure) or the
    checkpoint's position ``{"epoch": last complete epoch, "step": steps into the next epoch}``.
    Raises FileExistsError for another run's checkpoint: a restart never mixes two runs.
    """
    path = Path(checkpoint)
    if restarted <= 0 or not path.is_file():
        return None
    state = load_checkpoint(path)
    saved = state.get("run")
    if saved != dict(identity):
        raise FileExistsError(
            f"{path.parent}: torchrun restarted the workers, but checkpoint.pt belongs to another "
            f"run ({_describe(saved)}; this run: {_describe(identity)}); a restart resumes only "
            f"its own run's checkpoint: continue that run with --resume {path.parent} or choose "
            "another --out")
    partial = state.get("partial") or {}
    return {"epoch": int(state["epoch"]), "step": int(partial.get("step", 0))}


__all__ = ["MAX_RESTARTS", "RESTART_COUNT", "RUN_ID", "UNHASHED_SETTINGS", "auto_resume",
           "group_restarted", "restart_count", "restarts_allowed", "run_id", "run_identity",
           "settings_digest"]
