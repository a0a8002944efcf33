"""Checkpoints: written atomically, loaded with ``weights_only=True`` (no pickled code runs),
with every RNG state needed to resume exactly; the one layout of a training loop's
``checkpoint.pt`` (the search's and the fixed networks' alike) and its resume."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .files import atomic_write


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Atomically ``torch.save`` a checkpoint dict (tensors, state dicts, plain Python values)."""
    return atomic_write(path, lambda stream: torch.save(state, stream))


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``: no pickled code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint there")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
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
    name, ``records`` (history, run identity, ...) and every RNG state."""
    return {"epoch": epoch, "config": dict(settings),
            **{name: part.state_dict() for name, part in parts.items()}, **records,
            "rng": capture_rng_state()}


def resume_training(path: str | os.PathLike, settings: Mapping[str, Any], parts: Mapping[str, Any],
                    resume_keys: Sequence[str], map_location: Any = "cpu",
                    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Load a :func:`training_state` checkpoint into ``parts`` (by the names it saved them
    under) and restore every RNG, after refusing, in one line, a change of any of
    ``resume_keys`` between its settings and ``settings`` (the saved ones read through
    ``upgrade``, which renames what older versions saved). Returns the checkpoint (its epoch,
    records, ...)."""
    state = load_checkpoint(path, map_location=map_location)
    saved = upgrade(state["config"]) if upgrade else state["config"]
    changed = [key for key in resume_keys if saved.get(key) != settings.get(key)]
    if changed:
        details = ", ".join(f"{key}: {saved.get(key)!r} -> {settings.get(key)!r}" for key in changed)
        raise ValueError(f"{path}: cannot resume with different settings ({details})")
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
