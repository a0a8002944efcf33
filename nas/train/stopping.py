"""Graceful stop: SIGTERM ends a training loop at the next step boundary with a checkpoint.

SLURM (and most schedulers) send SIGTERM some seconds before they kill a job at its time limit.
Within :func:`stop_on_signals` the signal only raises a flag; the loop asks its
:class:`StepBoundary` after every step whether to stop. A signal reaches the ranks of a job at
different moments, so under a process group the ranks share the flag with one small all-reduce
per step and all stop after the same step. Rank 0 then writes ``checkpoint.pt`` with the step
within the epoch, every rank's partial epoch sums and RNG states, and every rank raises
:class:`StopRequested` (the command prints one line and exits 0). ``--resume`` continues that
epoch at the next step: the loaders skip the batches already trained (the sampler's order is
a function of the seed and the epoch alone), so the run ends as an uninterrupted one does.

A scheduler signals every process of a job, DataLoader workers included, and DataLoader raises
in the main thread as soon as a worker dies of a signal (from its SIGCHLD handler, at any
point of a step). Within :func:`stop_on_signals` a worker killed by SIGTERM counts as the stop
request it is; any other worker death still raises.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from .checkpoints import capture_rng_state, restore_rng_state, save_checkpoint
from .distributed import DistributedContext, all_reduce_max, barrier, gather_objects

#: Signals that ask a run to stop (SIGTERM: the scheduler's notice, and torchrun's own).
STOP_SIGNALS = (signal.SIGTERM,)

_requested: list[int] = []  # the stop requests received (signal numbers; 0: asked in code)


class StopRequested(Exception):
    """A run stopped on request at a step boundary after writing its checkpoint; not an
    error (the command exits 0). ``message`` says where and how to continue."""

    def __init__(self, message: str, checkpoint: Path, is_main: bool) -> None:
        super().__init__(message)
        self.checkpoint, self.is_main = Path(checkpoint), is_main


def request_stop(number: int = 0) -> None:
    """Ask the running loop to stop at its next step boundary (what the signal handler does,
    with the signal's number)."""
    _requested.append(int(number))


def _reason(code: int) -> str:
    """What a shared stop flag (a signal's number + 1, or 1) says asked for the stop."""
    try:
        return signal.Signals(code - 1).name if code > 1 else "request"
    except ValueError:
        return "request"


def clear_stop() -> None:
    _requested.clear()


def _on_signal(number: int, frame: Any) -> None:
    request_stop(number)


@contextlib.contextmanager
def stop_on_signals(signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, ``signals`` request a stop instead of ending the process; outside it
    they act as before. Usable as a decorator. In a thread other than the main one (where
    Python cannot install handlers) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    clear_stop()
    previous = {number: signal.signal(number, _on_signal) for number in signals}
    if hasattr(signal, "SIGCHLD") and signal.SIGTERM in signals:
        previous[signal.SIGCHLD] = _shield_from_terminated_loader_workers()
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        clear_stop()


def _shield_from_terminated_loader_workers() -> Any:
    """Wrap DataLoader's SIGCHLD handler (installed now, once per process, as DataLoader
    itself would at its first worker) so that a loader worker killed by SIGTERM requests a
    stop instead of raising in the middle of a step. Returns the handler to put back."""
    from torch.utils.data._utils import signal_handling

    signal_handling._set_SIGCHLD_handler()
    loader_handler = signal.getsignal(signal.SIGCHLD)
    terminated = f"killed by signal: {signal.strsignal(signal.SIGTERM)}"

    def on_child(number: int, frame: Any) -> None:
        try:
            if callable(loader_handler):
                loader_handler(number, frame)
        except RuntimeError as error:
            if terminated not in str(error):
                raise
            request_stop(signal.SIGTERM)

    signal.signal(signal.SIGCHLD, on_child)
    return loader_handler


class StepBoundary:
    """A loop's stop and resume points within an epoch.

    ``state``: the checkpoint a run resumes (None for a fresh run); if it was written mid-epoch
    (``state["partial"]``), :meth:`begin_epoch` continues that epoch where it stopped.
    """

    def __init__(self, context: DistributedContext, checkpoint: str | Path,
                 state: dict[str, Any] | None = None) -> None:
        self.context, self.checkpoint = context, Path(checkpoint)
        self._code = 0
        self.partial = (state or {}).get("partial")
        if self.partial and int(self.partial["world_size"]) != context.world_size:
            raise ValueError(
                f"{self.checkpoint}: written mid-epoch by {self.partial['world_size']} "
                f"process(es); resume it with as many (now {context.world_size}): each one's "
                "share of the epoch and random state were saved")

    def begin_epoch(self, epoch: int, loss_sum: torch.Tensor, loaders: Iterable[Any] = (),
                    cycled: Iterable[Any] = ()) -> tuple[int, torch.Tensor, int]:
        """Call after the epoch's randomness is set. Returns (first step, loss sum, steps): 0,
        ``loss_sum`` and 0, unless the resumed checkpoint stopped within ``epoch``: then
        ``loaders`` (one batch per step) skip the batches trained, ``cycled`` loaders (one
        batch per step, re-iterated when exhausted) skip as many modulo their length, this
        rank's RNG states come back, and its partial sums are returned."""
        partial, self.partial = self.partial, None
        if not partial or int(partial["epoch"]) != epoch:
            return 0, loss_sum, 0
        step = int(partial["step"])
        for loader in loaders:
            _skip(loader, step)
        for loader in cycled:
            _skip(loader, step % max(len(loader), 1))
        mine = partial["ranks"][self.context.rank]
        restore_rng_state(mine["rng"])
        loss_sum = torch.tensor(mine["loss_sum"], dtype=loss_sum.dtype, device=loss_sum.device)
        return step, loss_sum, int(mine["steps"])

    def _agreed(self) -> bool:
        """Whether any rank was asked to stop: the same answer on every rank, from one
        one-element all-reduce (0: no; else the signal's number + 1, or 1)."""
        code = _requested[0] + 1 if _requested else 0
        flag = torch.tensor([float(code)], device=self.context.device)
        self._code = int(all_reduce_max(flag, self.context).item())
        return self._code > 0

    def step_done(self, epoch: int, done: int, loss_sum: torch.Tensor, steps: int,
                  snapshot: Callable[[int], dict[str, Any]]) -> None:
        """After ``done`` steps of ``epoch``: if a stop was asked for on any rank, rank 0 writes
        ``snapshot(epoch - 1)`` (the checkpoint of the last complete epoch's form, with the
        weights of now) plus where the epoch stopped, and every rank raises StopRequested."""
        if not self._agreed():
            return
        ranks = gather_objects({"rng": capture_rng_state(), "loss_sum": float(loss_sum.item()),
                                "steps": int(steps)}, self.context)
        if self.context.is_main:
            save_checkpoint(self.checkpoint, {**snapshot(epoch - 1), "partial": {
                "epoch": epoch, "step": done, "world_size": self.context.world_size,
                "ranks": ranks}})
        barrier(self.context)
        self._stop(f"epoch {epoch + 1}, after step {done}")

    def epoch_done(self, epoch: int) -> None:
        """After the epoch's checkpoint: stop here if asked to during the epoch's end."""
        if self._agreed():
            barrier(self.context)
            self._stop(f"the end of epoch {epoch + 1}")

    def _stop(self, where: str) -> None:
        run = self.checkpoint.parent
        raise StopRequested(f"stopped on {_reason(self._code)} at {where}: checkpoint "
                            f"written to {self.checkpoint}; continue with the same command and "
                            f"--resume {run}", self.checkpoint, self.context.is_main)


def _skip(loader: Any, batches: int) -> None:
    sampler = getattr(loader, "sampler", None)
    if not hasattr(sampler, "skip_next"):
        raise TypeError("a loader resumed mid-epoch needs make_loader's shuffled sampler")
    sampler.skip_next(batches * int(loader.batch_size))


__all__ = ["STOP_SIGNALS", "StepBoundary", "StopRequested", "clear_stop", "request_stop",
           "stop_on_signals"]
