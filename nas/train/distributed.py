"""One process per device: DistributedDataParallel under ``torchrun``, a plain run otherwise.

``torchrun --nproc_per_node N script.py`` sets RANK / WORLD_SIZE / LOCAL_RANK; with them the
context initialises a process group (nccl on CUDA, gloo on CPU) and binds each process to its
GPU. Without them everything below degrades to a single process with no communication.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import nn

from ops import convert_sync_batchnorm


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files and shows progress."""
        return self.rank == 0


def resolve_device(name: str | None = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> this process's CUDA device if there is one, else CPU."""
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name!r}: CUDA is not available on this machine; "
                             "use --device cpu or auto")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def init_distributed(device: str | None = "auto", timeout_minutes: float = 30.0
                     ) -> DistributedContext:
    """Initialise from torchrun's environment if present (idempotent), else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistributedContext(rank, world_size, local_rank, resolved)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def all_reduce_mean(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy; the input is left alone)."""
    if not context.enabled:
        return values
    reduced = values.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / context.world_size


def all_reduce_sum(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    if not context.enabled:
        return values
    reduced = values.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced


def all_reduce_tensors(tensors: Sequence[torch.Tensor], context: DistributedContext) -> None:
    """Average tensors over ranks in place, in one flat all-reduce."""
    if not context.enabled or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= context.world_size
    offset = 0
    for tensor in tensors:
        tensor.copy_(flat[offset: offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()


def all_reduce_gradients(parameters: Sequence[nn.Parameter], context: DistributedContext
                         ) -> None:
    """Average ``.grad`` over ranks (for parameters no DistributedDataParallel wrapper owns,
    such as the supernet's weights and alphas, which must stay identical on every rank)."""
    all_reduce_tensors([p.grad for p in parameters if p.grad is not None], context)


def broadcast_object(value: Any, context: DistributedContext, source: int = 0) -> Any:
    """``value`` from rank ``source`` on every rank."""
    if not context.enabled:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=source)
    return holder[0]


def gather_objects(value: Any, context: DistributedContext) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not context.enabled:
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def wrap_model(model: nn.Module, context: DistributedContext, sync_batchnorm: bool = True,
               find_unused_parameters: bool = False) -> nn.Module:
    """Move to the device; under DDP convert BatchNorm to SyncBatchNorm and wrap."""
    model = model.to(context.device)
    if not context.enabled:
        return model
    if sync_batchnorm:
        model = convert_sync_batchnorm(model)
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                               find_unused_parameters=find_unused_parameters)
