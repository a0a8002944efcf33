"""The per-epoch learning rate of both loops: cosine to a floor, polynomial (power 0.9,
Myronenko / nnU-Net) or constant, from a closed form, so a resumed run sets exactly the rates
an uninterrupted one sets.

A run resumed with another ``--epochs`` does not restart the curve: a new segment begins at
the resume epoch, from the rate of the last epoch trained, and anneals over the epochs left,
so the learning rate never rises (a cosine rebuilt for the new length would jump back up), and
a finished run extended by more epochs does not go on at its final rate of 0.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

SCHEDULES = ("cosine", "poly", "none")


@dataclass(frozen=True)
class Segment:
    start: int  # first epoch of the segment
    end: int  # the run's number of epochs when the segment began
    start_lr: float  # the rate at ``start``


class EpochSchedule:
    def __init__(self, kind: str, base_lr: float, epochs: int, min_lr: float = 0.0) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
        self.kind, self.min_lr = kind, float(min_lr)
        self.segments = [Segment(0, int(epochs), float(base_lr))]

    @property
    def epochs(self) -> int:
        return self.segments[-1].end

    def lr(self, epoch: int) -> float:
        segment = next(s for s in reversed(self.segments) if s.start <= epoch)
        length = max(segment.end - segment.start, 1)
        progress = min(epoch - segment.start, length - 1) if self.kind == "poly" else \
            min(epoch - segment.start, length)
        if self.kind == "cosine":
            return self.min_lr + (segment.start_lr - self.min_lr) * (
                1 + math.cos(math.pi * progress / length)) / 2
        if self.kind == "poly":
            return segment.start_lr * (1 - progress / length) ** 0.9
        return segment.start_lr

    def set_epochs(self, epochs: int, resume_epoch: int) -> None:
        """Continue a run at ``resume_epoch`` for ``epochs`` in all (more or fewer than planned):
        from the rate of the last epoch trained, annealed over the epochs that are left."""
        if epochs != self.epochs:
            start = self.lr(max(resume_epoch - 1, 0))
            self.segments.append(Segment(resume_epoch, int(epochs), start))

    def apply(self, optimizer: torch.optim.Optimizer, epoch: int) -> float:
        """Set every parameter group's rate for ``epoch``; returns it."""
        rate = self.lr(epoch)
        for group in optimizer.param_groups:
            group["lr"] = rate
        return rate

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "min_lr": self.min_lr,
                "segments": [asdict(s) for s in self.segments]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kind, self.min_lr = state["kind"], float(state["min_lr"])
        self.segments = [Segment(**s) for s in state["segments"]]
