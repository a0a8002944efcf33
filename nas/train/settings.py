"""Checks of the settings a user gives, run before any data is read: each failure is one line
naming the command-line flag (``--epochs``) and what was expected."""
from __future__ import annotations

import math
from typing import Any, Iterable

#: settings whose flag is not the field name with dashes
_FLAGS = {"num_workers": "--workers", "splits_file": "--splits", "loss_options": "--loss"}


class SettingError(ValueError):
    """A setting outside its valid range; the message names the flag."""


def flag(field: str) -> str:
    """The command-line flag of a settings field: ``batch_size`` -> ``--batch-size``."""
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def require_int(field: str, value: Any, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SettingError(f"{flag(field)} must be an integer >= {minimum}, got {value!r}")


def require_number(field: str, value: Any, minimum: float = 0.0, strict: bool = False,
                   below: float | None = None) -> None:
    """``value`` >= ``minimum`` (> with ``strict``), and < ``below`` when given."""
    low_ok = _number(value) and (value > minimum if strict else value >= minimum)
    high_ok = _number(value) and (below is None or value < below)
    if not (low_ok and high_ok):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        if below is not None:
            bound += f" and < {below:g}"
        raise SettingError(f"{flag(field)} must be a number {bound}, got {value!r}")


def require_crop(field: str, value: Any, *, allow_side: bool = True) -> tuple[int, int, int]:
    """A 3D crop (or sliding window): ``N`` (a cube, unless ``allow_side`` is off) or three
    positive integers; returned as a tuple of three."""
    crop = (value,) * 3 if allow_side and isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(crop, (tuple, list)) or len(crop) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in crop)):
        raise SettingError(f"{flag(field)} must be one or three positive sizes (N or NxNxN), got {value!r}")
    return tuple(int(v) for v in crop)


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one line (its type and its message with whitespace collapsed), for a
    one-line error that names what went wrong underneath."""
    text = " ".join(str(error).split())
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def require_choice(field: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise SettingError(f"{flag(field)} must be one of {', '.join(map(str, choices))}, "
                           f"got {value!r}")
