"""The settings of one search: seed 002's preset for the dataset, with the flags a user set."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

import ops
from nas.presets import MACROS, SearchPreset, merge, search_preset
from nas.train.elastic import UNHASHED_SETTINGS
from nas.train.runtime import PRECISIONS
from nas.train.settings import SettingError, require_choice, require_crop, require_int, require_number
from supernet import SPACES, parse_layout
from supernet.fused_ops import fusable

#: The settings ``--resume`` may change: the number of epochs (a run is extended, or ended
#: sooner), where latency tables are cached, and what does not change what a run computes.
#: Every other one must be the run's own: a lambda, budget or learning rate changed halfway
#: would leave a genotype.json claiming the whole search used the new value.
#: ``checkpoint_cells`` only recomputes the same arithmetic in backward (memory, not results).
RESUME_MAY_CHANGE = ("epochs", "latency_cache", "checkpoint_cells", *UNHASHED_SETTINGS)

#: The U space's search cell implementations (``--cells``), one function of the same alphas:
#: fused (the edges leaving a node together; the default, the fastest step measured on a GPU so
#: far), batched (the cell inputs' edges, last norms and mixed sums together: 0.55x the fused
#: step's kernels, not yet timed on a GPU: issue 26's device run decides whether it becomes the
#: default), per-edge (one mixed op per edge: the reference). The DARTS stack is per-edge only.
CELLS = ("fused", "batched", "per-edge")


@dataclass(frozen=True, kw_only=True)
class SearchConfig(SearchPreset):
    """A preset's settings (:class:`nas.presets.SearchPreset`, declared there once) and the
    search's own."""

    dataset: str
    image_size: int | None = None  # 2D: the images' side (None: the training set's); 3D: None
    space: str = "unet"
    spatial_dims: int = 2
    crop_size: tuple[int, ...] | None = None  # 3D: the random crops searched on
    order: int = 1
    edge_normalization: bool = False
    alpha_sharing: str = "type"
    primitives: tuple[str, ...] | None = None  # the candidate ops (None: ops.SEARCH_OPS)
    max_parameter_free: int | None = None
    early_stop_skip: int | None = None
    warmup_epochs: int = 0
    shrink_below: float | None = None
    # latency- and memory-aware costs (nas.search.latency) and budgets (nas.search.costs)
    lambda_latency: float = 0.0
    lambda_memory: float = 0.0
    budget_params: float | None = None
    budget_flops: float | None = None
    budget_latency: float | None = None
    budget_memory: float | None = None
    latency_device: str | None = None
    latency_cache: str | None = None  # folder of the cached latency tables (set by nas.run)
    # beta-DARTS' regulariser: weight W * epoch / epochs on the mean logsumexp of the alphas
    beta_regularization: float = 0.0
    seed: int = 0
    precision: str = "auto"
    cells: str = "fused"  # CELLS
    checkpoint_cells: bool = False  # recompute each cell in backward: its inputs kept only
    cuda_graph: bool = False  # the whole step (both updates) replayed as one CUDA graph
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False
    num_workers: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        """Every setting checked now, before any data is read or preprocessed."""
        for field in ("epochs", "batch_size", "channels", "partial_channels"):
            require_int(field, getattr(self, field))
        require_choice("spatial_dims", self.spatial_dims, (2, 3))
        if self.spatial_dims == 2:
            if self.image_size is not None:
                require_int("image_size", self.image_size)
            if self.crop_size is not None:
                raise SettingError("--crop-size applies to 3D searches; a 2D search takes "
                                   "--image-size")
        else:
            # frozen: normalised once, here
            object.__setattr__(self, "crop_size", require_crop("crop_size", self.crop_size, allow_side=False))
            if self.image_size is not None:
                raise SettingError("--image-size applies to 2D searches; a 3D search takes "
                                   "--crop-size")
            if self.space != "unet":
                raise SettingError("--space darts is a 2D comparison space; the 3D search "
                                   "runs the U space (--space unet)")
        require_int("warmup_epochs", self.warmup_epochs, minimum=0)
        if self.warmup_epochs >= self.epochs:
            raise SettingError(f"--warmup-epochs {self.warmup_epochs} leaves no architecture "
                               f"epoch of --epochs {self.epochs}; expected fewer warm-up epochs")
        for field in ("lambda_params", "lambda_flops", "weight_lr_min", "weight_momentum", "arch_travel",
                      "weight_weight_decay", "arch_weight_decay", "drop_path"):
            require_number(field, getattr(self, field))
        for field in ("weight_lr", "arch_lr", "grad_clip", "width_growth"):
            require_number(field, getattr(self, field), strict=True)
        for field in ("lambda_latency", "lambda_memory", "beta_regularization"):
            require_number(field, getattr(self, field))
        for kind in ("params", "flops", "latency", "memory"):
            if getattr(self, f"budget_{kind}") is not None:
                require_number(f"budget_{kind}", getattr(self, f"budget_{kind}"), strict=True)
        if (self.lambda_latency or self.budget_latency is not None) and not self.latency_device:
            raise SettingError("--lambda-latency and --budget-latency need --latency-device "
                               "(cpu or cuda[:N]): the device the latency table is measured on")
        require_number("drop_path", self.drop_path, below=1.0)
        require_choice("space", self.space, SPACES)
        require_choice("order", self.order, (1, 2))
        require_choice("alpha_sharing", self.alpha_sharing, ("type", "cell"))
        require_choice("precision", self.precision, PRECISIONS)
        self._check_speed_options()
        for field in ("max_parameter_free", "early_stop_skip"):
            if getattr(self, field) is not None:
                require_int(field, getattr(self, field), minimum=0)
        if self.shrink_below is not None:
            require_number("shrink_below", self.shrink_below, strict=True, below=1.0)
        if self.channels % self.partial_channels:
            raise SettingError(f"--channels {self.channels} is not divisible by "
                               f"--partial-channels {self.partial_channels}")
        if self.primitives is not None:
            object.__setattr__(self, "primitives", tuple(self.primitives))
            unknown = [name for name in self.primitives if name not in ops.list_ops()]
            if unknown or len([n for n in self.primitives if n != "none"]) < 2:
                raise SettingError(f"--primitives must name at least 2 registered ops besides "
                                   f"none; unknown: {', '.join(unknown) or '-'} (valid: "
                                   f"{', '.join(ops.list_ops())})")
        try:
            counts = list(parse_layout(self.layout).values())
        except (ValueError, TypeError) as error:
            raise SettingError(f"--layout: {error}") from None
        if self.space == "darts" and sum(counts) < 3:
            raise SettingError(f"--layout {self.layout}: the DARTS space needs at least 3 cells")

    def _check_speed_options(self) -> None:
        """``--cells``, ``--checkpoint-cells``, ``--cuda-graph``: what each can run with."""
        require_choice("cells", self.cells, CELLS)
        primitives = self.primitives or ops.SEARCH_OPS
        # the fused and the batched cells compute one set of ops
        if self.space == "unet" and self.cells != "per-edge" and not fusable(primitives):
            raise SettingError(f"--cells {self.cells} cannot run the primitives "
                               f"{', '.join(primitives)}; use --cells per-edge")
        if self.checkpoint_cells and self.space != "unet":
            raise SettingError("--checkpoint-cells applies to the U space (--space unet)")
        if self.cuda_graph and self.compile:
            raise SettingError("--cuda-graph replays the eager step as one CUDA graph; drop "
                               "--compile (or use --compile alone)")

    @property
    def input_size(self) -> tuple[int, ...]:
        """The spatial size the supernet sees: the 2D images or the 3D crops."""
        if self.spatial_dims == 3:
            return tuple(self.crop_size)
        return (self.image_size,) * 2

    @property
    def lambdas(self) -> dict[str, float]:
        """The weight of each expected cost in the architecture loss."""
        return {"params": self.lambda_params, "flops": self.lambda_flops,
                "latency": self.lambda_latency, "memory": self.lambda_memory}

    @property
    def budgets(self) -> dict[str, float | None]:
        return {"params": self.budget_params, "flops": self.budget_flops,
                "latency": self.budget_latency, "memory": self.budget_memory}

    @property
    def needs_memory(self) -> bool:
        return bool(self.lambda_memory) or self.budget_memory is not None

    @classmethod
    def from_preset(cls, dataset: str, macro: str | None = None, preset: str | None = None,
                    **overrides: Any) -> "SearchConfig":
        """Seed 002's settings for ``dataset`` (or for the seed data set ``preset``, for a data
        set of the user's), then the ``macro`` preset's (``MACROS``), then every override that is
        not None."""
        if macro is not None:
            require_choice("macro", macro, MACROS)
            overrides = {**MACROS[macro], **{k: v for k, v in overrides.items() if v is not None}}
        values = merge(search_preset(preset or dataset), overrides)
        values["dataset"] = dataset
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown search setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)


def upgrade_settings(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's settings in today's names: ``fused`` (a bool, before ``--cells``) read as
    ``cells``, so runs started before it resume."""
    if "cells" in saved or "fused" not in saved:
        return saved
    upgraded = {key: value for key, value in saved.items() if key != "fused"}
    return {**upgraded, "cells": "fused" if saved["fused"] else "per-edge"}


def require_cuda_graph_device(cuda_graph: bool | None, device: torch.device,
                              processes: int = 1) -> None:
    """Refuse ``--cuda-graph`` where no graph can be captured: a CPU (a flag that silently did
    nothing would make a CPU run look like the graph's), or several processes (the gradients'
    all-reduce is not captured)."""
    if not cuda_graph:
        return
    if device.type != "cuda":
        raise SettingError("--cuda-graph needs a CUDA device")
    if processes > 1:
        raise SettingError(f"--cuda-graph runs in one process ({processes} here: the gradients' "
                           "all-reduce between processes is not captured)")


def architecture_lr(config: SearchConfig, steps_per_epoch: int) -> float:
    """The alphas' learning rate: ``--arch-lr``, raised where the search has too few
    architecture steps for it to travel ``--arch-travel`` (see ``SearchPreset.arch_travel``)."""
    steps = max(steps_per_epoch * (config.epochs - config.warmup_epochs), 1)
    if config.arch_travel <= 0:
        return config.arch_lr
    return max(config.arch_lr, config.arch_travel / steps)
