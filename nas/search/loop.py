"""The search: bilevel training of a supernet, one derived genotype per epoch, exact resume.

Each epoch alternates, per training batch, an architecture step on a validation batch
(:class:`~nas.search.architect.Architect`) and a weight step (SGD, momentum, cosine schedule, gradient
clipping); then it validates, derives the genotype, measures the derived network, and writes
``log.csv``, ``genotype.json``, ``alphas.json`` and ``checkpoint.pt`` (atomically).

The two updates are one step function of the batches' tensors that reads nothing on the host
(its losses are checked for NaN after it), so that ``--cuda-graph`` can replay it as one CUDA
graph (:class:`~nas.train.cuda_graph.GraphedStep`); without the flag it runs as it is.
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
from nas.train.checkpoints import resume_training, save_checkpoint, training_state
from nas.train.cuda_graph import GraphedStep
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
    check_finite_losses,
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
from supernet import Genotype, build_supernet
from supernet.fused_ops import fusable

from .architect import Architect
from .config import RESUME_MAY_CHANGE, SearchConfig, architecture_lr, require_cuda_graph_device, upgrade_settings
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
    if config.space == "darts":
        cells = sum(int(part) for part in config.layout.split("/"))
        return build_supernet("darts", num_cells=cells, **common)
    common.update(layout=config.layout, alpha_sharing=config.alpha_sharing,
                  width_growth=config.width_growth, checkpoint_cells=config.checkpoint_cells)

    def build(cells: str) -> torch.nn.Module:
        return build_supernet("unet", fused=cells == "fused", batched=cells == "batched", **common)

    # One seed, one search, whatever --cells says: the default's fused supernet draws the
    # weights and alphas (where the primitives allow it), the others take them over (the same
    # function); their own draws, overwritten, leave the random state as the default's left it.
    drawn = "fused" if fusable(common["primitives"]) else "per-edge"
    model = build(drawn)
    if config.cells == drawn:
        return model
    with torch.random.fork_rng(devices=[]):
        per_edge = model.export_to(build("per-edge")) if drawn == "fused" else model
        return per_edge if config.cells == "per-edge" else build(config.cells).load_from(per_edge)


@dataclasses.dataclass
class _Search:
    """What a search is made of once built: the supernet (and its maybe compiled forward), its
    costs, optimisers and schedule, the losses, loaders and the validation."""

    config: SearchConfig
    context: DistributedContext
    model: torch.nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    costs: CostModel
    latency: LatencyTable | None
    weight_params: list[torch.nn.Parameter]
    weight_optimizer: torch.optim.Optimizer
    schedule: EpochSchedule
    loss_fn: torch.nn.Module
    precision: torch.dtype | None
    train_loader: Any
    arch_loader: Any
    evaluate: Callable[[torch.nn.Module], dict[str, float]]
    arch_lr: float
    architect: Architect = dataclasses.field(init=False)  # steps with this object's losses
    epoch: int = 0  # the epoch running (the beta regulariser's ramp reads it)

    def segmentation_loss(self, net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
                          ) -> torch.Tensor:
        """The loss of ``net`` (``model``; ``forward`` may be its compiled form) on a batch's
        (image, label) on the device."""
        image, label = batch
        # a CUDA graph must not hold weight casts made outside its capture
        with autocast(self.context.device, self.precision, cache=not self.config.cuda_graph):
            logits = self.forward(image)
        return self.loss_fn(logits.float(), label)

    def architecture_loss(self, net: torch.nn.Module, batch: Any) -> torch.Tensor:
        config = self.config
        loss = self.segmentation_loss(net, batch) + self.costs.penalty(net, config.lambdas, config.budgets)
        if config.beta_regularization:  # beta-DARTS: weight ramped linearly with the epoch
            ramp = config.beta_regularization * self.epoch / config.epochs
            loss = loss + ramp * net.architecture.mean_logsumexp()
        return loss

    def step(self, train_image: torch.Tensor, train_label: torch.Tensor,
             val_image: torch.Tensor | None = None, val_label: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, ...]:
        """One search step on the device: an architecture update on the validation batch (when
        one is given), then a weight update on the training batch. Returns the detached
        (weight loss,) or (weight loss, architecture loss). Nothing in it reads a tensor on the
        host (the caller checks the losses afterwards), so it can be captured as a CUDA graph."""
        train = (train_image, train_label)
        arch_loss = None
        if val_image is not None:
            arch_loss = self.architect.step(train, (val_image, val_label), self.weight_optimizer)
        self.weight_optimizer.zero_grad(set_to_none=True)
        loss = self.segmentation_loss(self.model, train)
        loss.backward()
        all_reduce_gradients(self.weight_params, self.context)
        torch.nn.utils.clip_grad_norm_(self.weight_params, self.config.grad_clip)
        self.weight_optimizer.step()
        return (loss.detach(),) if arch_loss is None else (loss.detach(), arch_loss)

    def parts(self) -> dict[str, Any]:
        """What ``checkpoint.pt`` saves the state of, by name."""
        return {"model": self.model, "weight_optimizer": self.weight_optimizer,
                "schedule": self.schedule, "arch_optimizer": self.architect}


def _build(config: SearchConfig, train_set, val_set, context: DistributedContext,
           evaluate: Callable[[torch.nn.Module], dict[str, float]] | None) -> _Search:
    """The supernet (seeded), its costs, optimisers, loaders and validation."""
    device = context.device
    in_channels, num_classes = int(train_set.in_channels), int(train_set.num_classes)
    activation = ACTIVATION_FOR_TARGET.get(getattr(train_set, "target_kind", None))
    seed_everything(config.seed)
    configure_backends(device, config.deterministic)
    model = _supernet(config, in_channels, num_classes, activation)
    if context.enabled:  # batch statistics over all ranks: N x b behaves like one batch
        model = convert_sync_batchnorm(model)
    model = model.to(device)
    if config.channels_last:
        model = to_channels_last(model, config.spatial_dims)
    forward = torch.compile(model) if config.compile else model
    latency = (LatencyTable(config.latency_device, config.latency_cache)
               if config.latency_device else None)
    costs = CostModel(model, config.input_size, latency=latency, memory=config.needs_memory).to(device)
    weight_params = model.weight_parameters()
    weight_optimizer = torch.optim.SGD(weight_params, lr=config.weight_lr,
                                       momentum=config.weight_momentum,
                                       weight_decay=config.weight_weight_decay)
    schedule = EpochSchedule("cosine", config.weight_lr, config.epochs, config.weight_lr_min)
    loss_fn = losses.build(config.loss)
    precision = resolve_precision(config.precision, device)

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
    search = _Search(config, context, model, forward, costs, latency, weight_params, weight_optimizer,
                     schedule, loss_fn, precision, train_loader, arch_loader, evaluate, arch_lr)
    search.architect = Architect(model, search.segmentation_loss, search.architecture_loss, arch_lr,
                                 (0.5, 0.999), config.arch_weight_decay, config.order,
                                 reduce_hook=lambda tensors: all_reduce_tensors(tensors, context),
                                 capturable=config.cuda_graph)
    return search


#: Eager steps before the first capture of a run (cuDNN autotuning, the optimizers' lazy state
#: and the cells' index tensors settle there, as ``torch.cuda.graphs`` asks), and before the
#: capture of every later epoch (a new learning rate, the alphas' first update after the
#: warm-up epochs, ops pruned by --shrink-below: each epoch's step is captured anew).
GRAPH_WARMUP = (3, 1)


def _train_epoch(search: _Search, epoch: int, boundary: StepBoundary,
                 snapshot: Callable[[int], dict[str, Any]], checkpoint_path: Path,
                 first_epoch: bool) -> tuple[float, float]:
    """One epoch's steps (an architecture step before each weight step once the warm-up is
    over); returns (the weights' learning rate, the mean training loss over ranks)."""
    config, context, model = search.config, search.context, search.model
    start_epoch_randomness(config.seed, epoch, (search.train_loader, search.arch_loader), context.rank)
    search.epoch = epoch
    current_lr = search.schedule.apply(search.weight_optimizer, epoch)
    model.train()
    arch_batches = cycle(search.arch_loader)
    loss_sum = torch.zeros((), dtype=torch.float64, device=context.device)
    steps = 0
    with_arch = epoch >= config.warmup_epochs
    first, loss_sum, steps = boundary.begin_epoch(
        epoch, loss_sum, (search.train_loader,), (search.arch_loader,) if with_arch else ())
    # every setting a step reads from Python (learning rates, the beta ramp, the active ops)
    # is fixed within an epoch: one graph per epoch, captured after its eager warm-up steps
    run_step = (GraphedStep(search.step, warmup=GRAPH_WARMUP[0 if first_epoch else 1])
                if config.cuda_graph else search.step)
    bar = tqdm(search.train_loader, desc=f"search {epoch + 1}/{config.epochs}", leave=False,
               disable=not (config.progress and context.is_main))
    for step, train_batch in enumerate(bar, start=first):
        tensors = unpack_batch(train_batch, context.device, config.channels_last)
        if with_arch:
            tensors += unpack_batch(next(arch_batches), context.device, config.channels_last)
        losses = run_step(*tensors)  # a graph's outputs: read them before the next step
        check_finite_losses(([("architecture", losses[1])] if with_arch else []) + [("weight", losses[0])],
                            epoch, step, checkpoint_path)
        loss_sum += losses[0].double()
        steps += 1
        boundary.step_done(epoch, step + 1, loss_sum, steps, snapshot)
    return current_lr, all_reduce_mean(loss_sum / steps, context).item()


def _epoch_row(search: _Search, epoch: int, started: float, current_lr: float, train_loss: float,
               in_channels: int) -> tuple[dict[str, Any], Genotype, dict[str, Any]]:
    """After an epoch's steps: validate, shrink, derive the genotype and measure it; returns
    the epoch's ``log.csv`` row, the genotype and its costs."""
    config, model = search.config, search.model
    metrics = search.evaluate(model)
    if config.shrink_below is not None and epoch >= config.warmup_epochs:
        model.architecture.shrink(config.shrink_below)
    genotype = derive_genotype(model, config.max_parameter_free)
    shape = (in_channels,) + config.input_size
    derived = {**network_complexity(genotype, shape),
               **derived_costs(genotype, shape, search.latency, config.needs_memory)}
    with torch.no_grad():
        expected = search.costs.expected_costs(model)
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
               search.arch_lr, len(search.train_loader) * max(epoch + 1 - config.warmup_epochs, 0),
               len(model.primitives) - 1),
           "active_ops": model.architecture.active_op_count(),
           "weight_lr": current_lr, "arch_lr": search.arch_lr,
           "seconds": time.perf_counter() - started}
    return row, genotype, derived


def run_search(config: SearchConfig, train_set, val_set, out_dir: str | Path, *,
               context: DistributedContext | None = None, resume: bool = False,
               metadata: dict[str, Any] | None = None,
               on_epoch_end: Callable[[int, dict], None] | None = None,
               evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
               data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Search on ``train_set`` (weights) and ``val_set`` (alphas) and write the run into
    ``out_dir``. Returns the final genotype, the per-epoch history and why it stopped.

    ``on_epoch_end(epoch, row)`` is called after each epoch with the epoch's ``log.csv`` row plus
    two entries that are not in the log: ``alphas`` (softmax op weights per cell type, (edges,
    ops) lists, as in ``alphas.json``) and ``genotype`` (the genotype derived this epoch), for
    callbacks such as ``nas.pictures.tensorboard``.
    2D items are images (a config without ``image_size`` searches at ``train_set``'s, e.g. the
    size planned from its cases); 3D items random crops (``config.crop_size``), the
    architecture's batches drawn from ``val_set``'s. Each epoch ends with ``evaluate(model)``
    (its scores go to ``log.csv``; a 3D search passes a whole-volume sliding-window evaluation),
    by default the loss, DSC and MIoU over ``val_set``'s items. The supernet's output activation
    follows the data's ``target_kind`` (``"regions"``: sigmoid channels) and is recorded in the
    genotype file. ``data``: the data's identity (``data.data_identity``), recorded in
    ``checkpoint.pt``; ``resume`` refuses other data, and other settings but
    :data:`~nas.search.config.RESUME_MAY_CHANGE`.
    """
    context = context or DistributedContext(device=resolve_device("auto"))
    require_cuda_graph_device(config.cuda_graph, context.device, context.world_size)
    out_dir = Path(out_dir)
    checkpoint_path = out_dir / "checkpoint.pt"
    spatial_dims = int(getattr(train_set, "spatial_dims", 2))
    if spatial_dims != config.spatial_dims:
        raise ValueError(f"the data is {spatial_dims}D but the search settings are "
                         f"{config.spatial_dims}D (spatial_dims={config.spatial_dims})")
    # the run is the one of the settings as given (a restarted command's identity: nas.run)
    identity = run_identity(dataclasses.asdict(config))
    if spatial_dims == 2 and config.image_size is None:  # the size the data set serves
        config = dataclasses.replace(config, image_size=int(train_set.image_size))
    if context.is_main:
        check_output_dir(out_dir)
    in_channels = int(train_set.in_channels)
    search = _build(config, train_set, val_set, context, evaluate)
    model, settings, parts = search.model, dataclasses.asdict(config), search.parts()
    start_epoch, history, alphas_history, state = 0, [], [], None
    if resume:
        state = resume_training(checkpoint_path, settings, parts, RESUME_MAY_CHANGE, map_location=context.device,
                                data=data, upgrade=upgrade_settings)
        search.schedule.set_epochs(config.epochs, state["epoch"] + 1)  # a changed --epochs
        history, alphas_history = state["history"], state["alphas_history"]
        start_epoch = state["epoch"] + 1
    boundary = StepBoundary(context, checkpoint_path, state)

    def snapshot(completed: int) -> dict[str, Any]:  # checkpoint.pt after epoch ``completed``
        return training_state(completed, settings, parts, run=identity, history=history,
                              alphas_history=alphas_history, data=data)

    stop_reason = "completed"
    genotype = derive_genotype(model, config.max_parameter_free)
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        current_lr, train_loss = _train_epoch(search, epoch, boundary, snapshot, checkpoint_path,
                                              first_epoch=epoch == start_epoch)
        row, genotype, derived = _epoch_row(search, epoch, started, current_lr, train_loss, in_channels)
        history.append(row)
        alphas_history.append({k: v.tolist() for k, v in model.alpha_weights().items()})
        skips = skip_connect_count(genotype)
        if config.early_stop_skip is not None and max(skips.values()) >= config.early_stop_skip:
            stop_reason = (f"early stop at epoch {epoch}: {max(skips.values())} skip "
                           f"connections in a derived cell (limit {config.early_stop_skip})")
        if context.is_main:
            _write_epoch(out_dir, config, model, genotype, derived, history, alphas_history,
                         config.input_size, in_channels,
                         {**(metadata or {}), "arch_lr_used": search.arch_lr,
                          "latency_device": search.latency and search.latency.identity["device"],
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
