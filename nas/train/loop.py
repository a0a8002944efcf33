"""Training a fixed network from scratch: a derived genotype or a hand-designed 3D network.

One loop for both: the caller passes the model, the datasets and an ``evaluate(model)``
callable (2D slices or whole 3D volumes). The loop keeps ``checkpoint.pt`` (the last epoch, for
``--resume``) and ``best.pt`` (the best validation score), both written atomically.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

from nas import losses

from .checkpoints import resume_training, save_checkpoint, training_state, unwrap_model
from .distributed import DistributedContext, all_reduce_mean, resolve_device
from .elastic import run_identity
from .files import check_output_dir, write_log
from .loader import make_loader
from .runtime import (
    PRECISIONS,
    autocast,
    check_finite,
    configure_backends,
    resolve_precision,
    seed_everything,
    start_epoch_randomness,
    to_channels_last,
    unpack_batch,
)
from .schedule import SCHEDULES, EpochSchedule
from .settings import require_choice, require_int, require_number
from .stopping import StepBoundary

_RESUME_KEYS = ("dataset", "model", "batch_size", "seed", "image_size", "loss")

OPTIMIZERS = ("adam", "sgd")


@dataclass
class RetrainConfig:
    """One training run. The hyper-parameters have no defaults here: they come from a preset
    (``nas.presets``: seed 002's for genotypes, each paper's for the 3D networks)."""

    dataset: str
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    drop_path: float
    optimizer: str
    scheduler: str
    loss: str
    image_size: int | tuple[int, ...] | None  # 2D side (None: the data's, planned), or the 3D crop
    loss_options: dict[str, Any] = field(default_factory=dict)
    grad_clip: float | None = None
    model: str = "genotype"
    seed: int = 0
    precision: str = "auto"
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False
    num_workers: int | None = None
    progress: bool = True
    select_metric: str = "val_dsc"

    def __post_init__(self) -> None:
        """Every setting checked now, before any data is read or preprocessed."""
        require_int("epochs", self.epochs)
        require_int("batch_size", self.batch_size)
        require_number("lr", self.lr, strict=True)
        require_number("weight_decay", self.weight_decay)
        require_number("drop_path", self.drop_path, below=1.0)
        require_choice("optimizer", self.optimizer, OPTIMIZERS)
        require_choice("scheduler", self.scheduler, SCHEDULES)
        require_choice("precision", self.precision, PRECISIONS)
        require_choice("loss", self.loss, losses.list_losses())
        if self.image_size is not None:
            sizes = (self.image_size,) if isinstance(self.image_size, int) else tuple(self.image_size)
            for size in sizes:
                require_int("image_size", size)
        if self.grad_clip is not None:
            require_number("grad_clip", self.grad_clip, strict=True)


def build_optimizer(config: RetrainConfig, parameters) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=0.9,
                               weight_decay=config.weight_decay, nesterov=True)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {config.optimizer!r}")


def _loss_takes_image(loss_fn: nn.Module) -> bool:
    return "image" in inspect.signature(loss_fn.forward).parameters


def run_retrain(model: nn.Module, config: RetrainConfig, train_set, out_dir: str | Path,
                evaluate: Callable[[nn.Module], dict[str, float]], *,
                context: DistributedContext | None = None, resume: bool = False,
                metadata: dict[str, Any] | None = None,
                on_epoch_end: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
    """Train ``model`` on ``train_set`` for ``config.epochs``; after each epoch ``evaluate`` it
    (it returns at least ``config.select_metric``) and keep the best weights in ``best.pt``.

    ``model`` may already be wrapped for DistributedDataParallel. Returns the history and the
    best epoch's metrics.
    """
    context = context or DistributedContext(device=resolve_device("auto"))
    device = context.device
    out_dir = Path(out_dir)
    checkpoint_path, best_path = out_dir / "checkpoint.pt", out_dir / "best.pt"
    if context.is_main:
        check_output_dir(out_dir)
    seed_everything(config.seed)
    configure_backends(device, config.deterministic)
    plain = unwrap_model(model)
    if config.channels_last:
        model = to_channels_last(model, getattr(plain, "spatial_dims", 3))
    forward = torch.compile(model) if config.compile else model
    optimizer = build_optimizer(config, [p for p in model.parameters() if p.requires_grad])
    schedule = EpochSchedule(config.scheduler, config.lr, config.epochs)
    loss_fn = losses.build(config.loss, **config.loss_options)
    takes_image = _loss_takes_image(loss_fn)
    # the network decides auto: bf16 only for dense convolutions (runtime.AUTO_PRECISION_RULE)
    precision = resolve_precision(config.precision, device, plain)
    settings = dataclasses.asdict(config)
    parts = {"model": plain, "optimizer": optimizer, "schedule": schedule}
    start_epoch, history, best = 0, [], {"epoch": -1, "score": -math.inf}
    state = None
    if resume:
        state = resume_training(checkpoint_path, settings, parts, _RESUME_KEYS, map_location=device)
        schedule.set_epochs(config.epochs, state["epoch"] + 1)  # a changed --epochs
        history, best = state["history"], state["best"]
        start_epoch = state["epoch"] + 1
    boundary = StepBoundary(context, checkpoint_path, state)

    def snapshot(completed: int) -> dict[str, Any]:  # checkpoint.pt after epoch ``completed``
        return training_state(completed, settings, parts, run=run_identity(settings), history=history,
                              best=best, **(metadata or {}))

    loader = make_loader(train_set, config.batch_size, shuffle=True, drop_last=True,
                         num_workers=config.num_workers, distributed=context.enabled,
                         seed=config.seed)
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        start_epoch_randomness(config.seed, epoch, (loader,), context.rank)
        current_lr = schedule.apply(optimizer, epoch)
        loss_fn.set_epoch(epoch, config.epochs)
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        steps = 0
        first, loss_sum, steps = boundary.begin_epoch(epoch, loss_sum, (loader,))
        for step, batch in enumerate(tqdm(loader, desc=f"train {epoch + 1}/{config.epochs}",
                                          leave=False,
                                          disable=not (config.progress and context.is_main)),
                                     start=first):
            image, label = unpack_batch(batch, device, config.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, precision):
                output = forward(image)
            output = _to_float(output)
            loss = loss_fn(output, label, image=image) if takes_image else loss_fn(output, label)
            check_finite(loss, epoch, step, "training", checkpoint_path)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            loss_sum += loss.detach().double()
            steps += 1
            boundary.step_done(epoch, step + 1, loss_sum, steps, snapshot)
        if steps == 0:
            raise ValueError(f"the training split has fewer than batch_size={config.batch_size} "
                             "samples; lower --batch-size or add data")
        metrics = evaluate(model)
        row = {"epoch": epoch, "train_loss": all_reduce_mean(loss_sum / steps, context).item(),
               **metrics, "lr": current_lr, "seconds": time.perf_counter() - started}
        history.append(row)
        score = float(metrics[config.select_metric])
        # NaN (no class scored: empty in every prediction and truth) ranks below any score; the
        # first epoch is kept all the same, so a best.pt always exists
        score = -math.inf if math.isnan(score) else score
        improved = score > best["score"] or best["epoch"] < 0
        if improved:
            best = {"epoch": epoch, "score": score, "metrics": dict(metrics)}
        if context.is_main:
            write_log(history, out_dir / "log.csv")
            if improved:
                save_checkpoint(best_path, {"epoch": epoch, "config": settings,
                                            "model": plain.state_dict(),
                                            "metrics": dict(metrics), **(metadata or {})})
            save_checkpoint(checkpoint_path, snapshot(epoch))
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        boundary.epoch_done(epoch)
    return {"history": history, "best": best, "out_dir": out_dir, "model": plain}


def _to_float(output: Any) -> Any:
    """Cast a network's output (tensor, tuple or dataclass of tensors) to float32 for the loss."""
    if isinstance(output, torch.Tensor):
        return output.float()
    if isinstance(output, tuple) and hasattr(output, "_fields"):
        return type(output)(*(_to_float(o) for o in output))
    if isinstance(output, (tuple, list)):
        return type(output)(_to_float(o) for o in output)
    if dataclasses.is_dataclass(output):
        return dataclasses.replace(output, **{f.name: _to_float(getattr(output, f.name))
                                             for f in dataclasses.fields(output)})
    return output
