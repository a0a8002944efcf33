"""Checkpoints: written atomically, loaded with ``weights_only=True`` (no pickled code runs),
with every RNG state needed to resume exactly; the one layout of a training loop's
``checkpoint.pt`` (the search's and the fixed networks' alike) and its resume."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from .files import atomic_write
from .settings import flag


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Atomically ``torch.save`` a checkpoint dict (tensors, state dicts, plain Python values)."""
    return atomic_write(path, lambda stream: torch.save(state, stream))


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``: no pickled code runs). ``mmap``: its
    tensors mapped, not read (the checks of a resume read its records only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint there")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # truncated or foreign files raise many different types
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''})") from None


def capture_rng_state() -> dict[str, Any]:
    """Every RNG the training touches, in a form ``weights_only`` loading accepts."""
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
                  "position": int(numpy_state[2]), "has_gauss": int(numpy_state[3]),
                  "cached_gaussian": float(numpy_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"],
                         numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state(epoch: int, settings: Mapping[str, Any], parts: Mapping[str, Any],
                   **records: Any) -> dict[str, Any]:
    """What a loop's ``checkpoint.pt`` holds after epoch ``epoch``: its ``settings`` (the config
    as a dict), the state dict of each of ``parts`` (the model, optimisers, schedule) under its
    name, ``records`` (history, run identity, the data's identity, ...) and every RNG state."""
    return {"epoch": epoch, "config": dict(settings),
            **{name: part.state_dict() for name, part in parts.items()}, **records,
            "rng": capture_rng_state()}


def _plain(value: Any) -> Any:
    """A setting as JSON would hold it (tuples as lists), so a recorded value compares equal to
    the same value given again whichever way it travelled."""
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def changed_settings(recorded: Mapping[str, Any], given: Mapping[str, Any],
                     may_change: Iterable[str] = ()) -> list[str]:
    """The settings of ``given`` whose value differs from ``recorded``'s, each as
    ``--flag: old -> new`` in ``given``'s order: the rule of a resumed run (every setting as it
    was started with, but ``may_change``). A setting ``recorded`` lacks (written by an older
    lwnas) is not compared."""
    allowed = set(may_change)
    return [f"{flag(key)}: {recorded[key]!r} -> {value!r}" for key, value in given.items()
            if key not in allowed and key in recorded and _plain(recorded[key]) != _plain(value)]


def changed_data(recorded: Mapping[str, Any] | None, given: Mapping[str, Any] | None) -> str | None:
    """How the data ``given`` (``data.data_identity``: a root and a hash per case) differs from the
    ``recorded`` data of a run, in words, or None: the same files (in the same or another place),
    or one side unknown (a checkpoint of an older lwnas)."""
    if not recorded or not given:
        return None
    before, now = recorded["cases"], given["cases"]
    differing = [case for case, digest in now.items() if before.get(case) != digest]
    if not differing:
        return None
    count = f"the files of {len(differing)} of its {len(before)} cases"
    if recorded["root"] == given["root"]:
        return f"under {given['root']} {count} changed since it started, e.g. {differing[0]}"
    return f"the run was trained on {recorded['root']}; under {given['root']} {count} differ, e.g. {differing[0]}"


def check_resumable(path: str | os.PathLike, state: Mapping[str, Any], settings: Mapping[str, Any] | None = None,
                    may_change: Iterable[str] = (), data: Mapping[str, Any] | None = None) -> None:
    """Refuse, in one line naming ``path`` and every difference, to resume the checkpoint ``state``
    with other ``settings`` than its ``config`` (:func:`changed_settings`; all but ``may_change``)
    or on other ``data`` than it records (:func:`changed_data`); None: not compared."""
    problems, remedies = [], []
    changed = changed_settings(state.get("config") or {}, settings or {}, may_change)
    if changed:
        problems.append(f"the settings differ ({'; '.join(changed)})")
        epochs = " (another --epochs is allowed)" if "epochs" in set(may_change) else ""
        remedies.append(f"the settings the run was started with{epochs}")
    other = changed_data(state.get("data"), data)
    if other:
        problems.append(f"the data differ ({other})")
        remedies.append("the data it was trained on (--data-root)")
    if problems:
        raise ValueError(f"{path}: cannot resume: {' and '.join(problems)}; give --resume {' and '.join(remedies)}, "
                         "or start a new run with another --out")


def resume_training(path: str | os.PathLike, settings: Mapping[str, Any], parts: Mapping[str, Any],
                    may_change: Iterable[str], map_location: Any = "cpu",
                    data: Mapping[str, Any] | None = None,
                    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Load a :func:`training_state` checkpoint into ``parts`` (by the names it saved them
    under) and restore every RNG, after refusing (:func:`check_resumable`) other ``settings``
    than its own but ``may_change``, or other ``data`` (the saved settings read through
    ``upgrade``, which renames what older versions saved). Returns the checkpoint (its epoch,
    records, ...)."""
    state = load_checkpoint(path, map_location=map_location)
    if upgrade:
        state = {**state, "config": upgrade(state["config"])}
    check_resumable(path, state, settings, may_change, data)
    for name, part in parts.items():
        part.load_state_dict(state[name])
    restore_rng_state(state["rng"])
    return state


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model
