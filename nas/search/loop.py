"""The search: bilevel training of a supernet, one derived genotype per epoch, exact resume.

Each epoch alternates, per training batch, an architecture step on a validation batch
(:class:`~nas.search.architect.Architect`) and a weight step (SGD, momentum, cosine schedule, gradient
clipping); then it validates, derives the genotype, measures the derived network, and writes
``log.csv``, ``genotype.json``, ``alphas.json`` and ``checkpoint.pt`` (atomically).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

import ops
from nas import losses
from nas.presets import ACTIVATION_FOR_TARGET
from nas.train.checkpoints import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from nas.train.distributed import (
    DistributedContext,
    all_reduce_gradients,
    all_reduce_mean,
    all_reduce_tensors,
    resolve_device,
)
from nas.train.elastic import run_identity
from nas.train.evaluation import evaluate_segmentation
from nas.train.files import atomic_write_text, check_output_dir, write_log
from nas.train.loader import make_loader
from nas.train.runtime import (
    autocast,
    check_finite,
    configure_backends,
    cycle,
    resolve_precision,
    seed_everything,
    start_epoch_randomness,
    to_channels_last,
    unpack_batch,
)
from nas.train.schedule import EpochSchedule
from nas.train.stopping import StepBoundary
from ops import convert_sync_batchnorm
from supernet import build_supernet

from .architect import Architect
from .config import RESUME_KEYS, SearchConfig, architecture_lr
from .costs import UNITS, CostModel, network_complexity
from .derive import (
    decision_margins,
    derive_genotype,
    margin_summary,
    noise_margin,
    parameter_free_share,
    skip_connect_count,
)
from .genotype_file import save_genotype
from .latency import LatencyTable, derived_costs


def _supernet(config: SearchConfig, in_channels: int, num_classes: int,
              output_activation: str | None = None) -> torch.nn.Module:
    common = dict(in_channels=in_channels, num_classes=num_classes, channels=config.channels,
                  primitives=config.primitives or ops.SEARCH_OPS,
                  partial_channels=config.partial_channels,
                  edge_normalization=config.edge_normalization, drop_path_rate=config.drop_path,
                  spatial_dims=config.spatial_dims, output_activation=output_activation)
    if config.space == "unet":
        # fused cells compute the same function faster (reduction-free U cells only)
        return build_supernet("unet", layout=config.layout, alpha_sharing=config.alpha_sharing,
                              fused=config.fused, width_growth=config.width_growth, **common)
    cells = sum(int(part) for part in config.layout.split("/"))
    return build_supernet("darts", num_cells=cells, **common)


def _check_resumable(saved: dict, config: SearchConfig, path: Path) -> None:
    current = dataclasses.asdict(config)
    changed = [k for k in RESUME_KEYS if saved.get(k) != current.get(k)]
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ValueError(f"{path}: cannot resume with different settings ({details})")


def run_search(config: SearchConfig, train_set, val_set, out_dir: str | Path, *,
               context: DistributedContext | None = None, resume: bool = False,
               metadata: dict[str, Any] | None = None,
               on_epoch_end: Callable[[int, dict], None] | None = None,
               evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None
               ) -> dict[str, Any]:
    """Search on ``train_set`` (weights) and ``val_set`` (alphas) and write the run into
    ``out_dir``. Returns the final genotype, the per-epoch history and why it stopped.

    ``on_epoch_end(epoch, row)`` is called after each epoch with the epoch's ``log.csv`` row plus
    two entries that are not in the log: ``alphas`` (softmax op weights per cell type, (edges,
    ops) lists, as in ``alphas.json``) and ``genotype`` (the genotype derived this epoch), for
    callbacks such as ``nas.pictures.tensorboard``.
    2D items are images; 3D items random crops (``config.crop_size``), the architecture's
    batches drawn from ``val_set``'s. Each epoch ends with ``evaluate(model)`` (its scores go to
    ``log.csv``; a 3D search passes a whole-volume sliding-window evaluation), by default the
    loss, DSC and MIoU over ``val_set``'s items. The supernet's output activation follows the
    data's ``target_kind`` (``"regions"``: sigmoid channels) and is recorded in the genotype file.
    """
    context = context or DistributedContext(device=resolve_device("auto"))
    device = context.device
    out_dir = Path(out_dir)
    checkpoint_path = out_dir / "checkpoint.pt"
    spatial_dims = int(getattr(train_set, "spatial_dims", 2))
    if spatial_dims != config.spatial_dims:
        raise ValueError(f"the data is {spatial_dims}D but the search settings are "
                         f"{config.spatial_dims}D (spatial_dims={config.spatial_dims})")
    if context.is_main:
        check_output_dir(out_dir)
    input_size = config.input_size
    in_channels, num_classes = int(train_set.in_channels), int(train_set.num_classes)
    activation = ACTIVATION_FOR_TARGET.get(getattr(train_set, "target_kind", None))

    seed_everything(config.seed)
    configure_backends(device, config.deterministic)
    model = _supernet(config, in_channels, num_classes, activation)
    if context.enabled:  # batch statistics over all ranks: N x b behaves like one batch
        model = convert_sync_batchnorm(model)
    model = model.to(device)
    if config.channels_last:
        model = to_channels_last(model, spatial_dims)
    forward = torch.compile(model) if config.compile else model
    latency = (LatencyTable(config.latency_device, config.latency_cache)
               if config.latency_device else None)
    costs = CostModel(model, input_size, latency=latency, memory=config.needs_memory).to(device)
    weight_params = model.weight_parameters()
    weight_optimizer = torch.optim.SGD(weight_params, lr=config.weight_lr,
                                       momentum=config.weight_momentum,
                                       weight_decay=config.weight_weight_decay)
    schedule = EpochSchedule("cosine", config.weight_lr, config.epochs, config.weight_lr_min)
    loss_fn = losses.build(config.loss)
    precision = resolve_precision(config.precision, device)

    def segmentation_loss(net, batch):
        image, label = unpack_batch(batch, device, config.channels_last)
        with autocast(device, precision):
            logits = forward(image)  # ``net`` is ``model``; ``forward`` may be its compiled form
        return loss_fn(logits.float(), label)

    progress = {"epoch": 0}

    def architecture_loss(net, batch):
        loss = segmentation_loss(net, batch) + costs.penalty(net, config.lambdas, config.budgets)
        if config.beta_regularization:  # beta-DARTS: weight ramped linearly with the epoch
            ramp = config.beta_regularization * progress["epoch"] / config.epochs
            loss = loss + ramp * net.architecture.mean_logsumexp()
        return loss

    needed = config.batch_size * context.world_size
    for name, split in (("training", train_set), ("validation", val_set)):
        if len(split) < needed:
            raise ValueError(f"the {name} split has {len(split)} items, fewer than one batch "
                             f"of {config.batch_size} per process x {context.world_size} "
                             "processes; lower --batch-size, use fewer processes or add data")
    loader_options = dict(num_workers=config.num_workers, distributed=context.enabled,
                          seed=config.seed)
    train_loader = make_loader(train_set, config.batch_size, shuffle=True, drop_last=True,
                               **loader_options)
    arch_loader = make_loader(val_set, config.batch_size, shuffle=True, drop_last=True,
                              **loader_options)
    if evaluate is None:
        eval_loader = make_loader(val_set, config.batch_size, shuffle=False, drop_last=False,
                                  **loader_options)

        def evaluate(net):
            return evaluate_segmentation(net, eval_loader, loss_fn, device, context, precision,
                                         getattr(val_set, "class_names", None))
    arch_lr = architecture_lr(config, len(train_loader))
    architect = Architect(model, segmentation_loss, architecture_loss, arch_lr,
                          (0.5, 0.999), config.arch_weight_decay, config.order,
                          reduce_hook=lambda tensors: all_reduce_tensors(tensors, context))
    start_epoch, history, alphas_history = 0, [], []
    if resume:
        state = load_checkpoint(checkpoint_path, map_location=device)
        _check_resumable(state["config"], config, checkpoint_path)
        model.load_state_dict(state["model"])
        weight_optimizer.load_state_dict(state["weight_optimizer"])
        schedule.load_state_dict(state["schedule"])
        schedule.set_epochs(config.epochs, state["epoch"] + 1)  # a changed --epochs
        architect.load_state_dict(state["arch_optimizer"])
        history, alphas_history = state["history"], state["alphas_history"]
        start_epoch = state["epoch"] + 1
        restore_rng_state(state["rng"])
    boundary = StepBoundary(context, checkpoint_path, state if resume else None)

    def snapshot(completed: int) -> dict[str, Any]:  # checkpoint.pt after epoch ``completed``
        return {"epoch": completed, "config": dataclasses.asdict(config),
                "run": run_identity(dataclasses.asdict(config)),
                "model": model.state_dict(), "weight_optimizer": weight_optimizer.state_dict(),
                "schedule": schedule.state_dict(), "arch_optimizer": architect.state_dict(),
                "history": history, "alphas_history": alphas_history, "rng": capture_rng_state()}

    stop_reason = "completed"
    genotype = derive_genotype(model, config.max_parameter_free)
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        start_epoch_randomness(config.seed, epoch, (train_loader, arch_loader), context.rank)
        progress["epoch"] = epoch
        current_lr = schedule.apply(weight_optimizer, epoch)
        model.train()
        arch_batches = cycle(arch_loader)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        steps = 0
        first, loss_sum, steps = boundary.begin_epoch(
            epoch, loss_sum, (train_loader,), (arch_loader,) if epoch >= config.warmup_epochs else ())
        bar = tqdm(train_loader, desc=f"search {epoch + 1}/{config.epochs}", leave=False,
                   disable=not (config.progress and context.is_main))
        for step, train_batch in enumerate(bar, start=first):
            if epoch >= config.warmup_epochs:
                val_loss = architect.step(train_batch, next(arch_batches), weight_optimizer)
                check_finite(val_loss, epoch, step, "architecture", checkpoint_path)
            weight_optimizer.zero_grad(set_to_none=True)
            loss = segmentation_loss(model, train_batch)
            check_finite(loss, epoch, step, "weight", checkpoint_path)
            loss.backward()
            all_reduce_gradients(weight_params, context)
            torch.nn.utils.clip_grad_norm_(weight_params, config.grad_clip)
            weight_optimizer.step()
            loss_sum += loss.detach().double()
            steps += 1
            boundary.step_done(epoch, step + 1, loss_sum, steps, snapshot)
        train_loss = all_reduce_mean(loss_sum / steps, context).item()
        metrics = evaluate(model)
        if config.shrink_below is not None and epoch >= config.warmup_epochs:
            model.architecture.shrink(config.shrink_below)
        genotype = derive_genotype(model, config.max_parameter_free)
        derived = {**network_complexity(genotype, (in_channels,) + input_size),
                   **derived_costs(genotype, (in_channels,) + input_size, latency,
                                   config.needs_memory)}
        with torch.no_grad():
            expected = costs.expected_costs(model)
        row = {"epoch": epoch, "train_loss": train_loss, **metrics,
               **{f"expected_{kind}_{UNITS[kind]}": value.item()
                  for kind, value in expected.items()},
               "derived_params_M": derived["params"] / 1e6,
               "derived_flops_G": derived["flops"] / 1e9,
               **{f"derived_{name}": derived[name] for name in ("latency_ms", "memory_MB")
                  if name in derived},
               "parameter_free_share": parameter_free_share(genotype),
               **margin_summary(decision_margins(model.alpha_weights(), genotype)),
               "noise_margin": noise_margin(
                   arch_lr, len(train_loader) * max(epoch + 1 - config.warmup_epochs, 0),
                   len(model.primitives) - 1),
               "active_ops": model.architecture.active_op_count(),
               "weight_lr": current_lr, "arch_lr": arch_lr,
               "seconds": time.perf_counter() - started}
        history.append(row)
        alphas_history.append({k: v.tolist() for k, v in model.alpha_weights().items()})
        skips = skip_connect_count(genotype)
        if config.early_stop_skip is not None and max(skips.values()) >= config.early_stop_skip:
            stop_reason = (f"early stop at epoch {epoch}: {max(skips.values())} skip "
                           f"connections in a derived cell (limit {config.early_stop_skip})")
        if context.is_main:
            _write_epoch(out_dir, config, model, genotype, derived, history, alphas_history,
                         input_size, in_channels, {**(metadata or {}), "arch_lr_used": arch_lr,
                                                   "latency_device": latency and
                                                   latency.identity["device"],
                                                   "output_activation": model.output_activation})
            save_checkpoint(checkpoint_path, snapshot(epoch))
        if on_epoch_end is not None:  # the log row, plus this epoch's op weights and genotype
            on_epoch_end(epoch, {**row, "alphas": alphas_history[-1], "genotype": genotype})
        if stop_reason != "completed":
            break
        boundary.epoch_done(epoch)
    return {"genotype": genotype, "history": history, "stop_reason": stop_reason,
            "out_dir": out_dir, "model": model, "warnings": _warnings(history)}


def _warnings(history: list[dict]) -> list[str]:
    """What a user must know about a finished search: decisions within noise."""
    if not history:
        return []
    last = history[-1]
    if last["margin_median"] < last["noise_margin"]:
        return [f"the derived cells were decided by noise: the median decision margin "
                f"{last['margin_median']:.4f} (each chosen op's weight minus the runner-up's) "
                f"is below {last['noise_margin']:.4f}, what architecture gradients of random "
                "sign reach after as many steps (nas.search.derive.noise_margin); search "
                "longer (--epochs), add data, or check the seed spread before trusting it"]
    return []


def _write_epoch(out_dir: Path, config: SearchConfig, model, genotype, derived, history,
                 alphas_history, input_size, in_channels, metadata) -> None:
    save_genotype(
        out_dir / "genotype.json", genotype, dataset=config.dataset,
        search=dataclasses.asdict(config), epoch=len(history) - 1,
        alphas=alphas_history[-1],
        edge_weights=({k: v.tolist() for k, v in model.edge_strengths().items()}
                      if model.edge_strengths() is not None else None),
        complexity={"params": derived["params"], "flops": derived["flops"],
                    "flops_convention": "multiply-accumulates (seed 002's FLOPs)",
                    "input_shape": [in_channels, *input_size],
                    **{name: derived[name] for name in ("latency_ms", "memory_MB")
                       if name in derived}},
        decision_margins={k: history[-1][k] for k in ("margin_min", "margin_median")},
        **(metadata or {}))
    write_log(history, out_dir / "log.csv")
    atomic_write_text(out_dir / "alphas.json", json.dumps(
        {"primitives": list(model.primitives), "epochs": alphas_history}))
