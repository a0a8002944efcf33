"""One process per device: DistributedDataParallel under ``torchrun``, a plain run otherwise.

``torchrun --nproc_per_node N script.py`` sets RANK / WORLD_SIZE / LOCAL_RANK; with them the
context initialises a process group (nccl on CUDA, gloo on CPU) and binds each process to its
GPU. Without them everything below degrades to a single process with no communication.

Several machines (``torchrun --nnodes M --rdzv-backend c10d --rdzv-endpoint HOST:PORT``) are
the same to this module: RANK and WORLD_SIZE are global (they pick the data shard, and rank 0
alone writes files and shows progress), LOCAL_RANK only picks the GPU of this machine.
"""
from __future__ import annotations

import datetime
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
from torch import nn

from ops import convert_sync_batchnorm

from .files import OutputDirectoryError


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
    if world_size > 1 and resolved.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # torchrun gives each worker OMP_NUM_THREADS=1 when a node runs several of them, and
        # nothing when it runs one; CPU kernels round differently with another thread count,
        # so without this 2 nodes x 1 process would not reproduce 1 node x 2 processes.
        torch.set_num_threads(1)
    if world_size > 1 and not dist.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        timeout = datetime.timedelta(minutes=timeout_minutes)
        store = _group_store(rank, world_size, timeout) if _agent_store_shared() else None
        dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timeout,
                                store=store)
        if _STORES and rank == 0:  # every rank reached rank 0's store: withdraw the notice
            agent, key, _ = _STORES[-1]
            agent.delete_key(key)
    return DistributedContext(rank, world_size, local_rank, resolved)


def _agent_store_shared() -> bool:
    """Whether torchrun points the workers at its agent's TCP store (its default since 2.4,
    off with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1)."""
    return os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and "MASTER_PORT" in os.environ


_STORES: list = []  # rank 0's (agent store, notice key, own store): the server lives on


def _group_store(rank: int, world_size: int, timeout: datetime.timedelta) -> dist.Store:
    """A TCP store of this worker group's own for ``init_process_group``, hosted by rank 0.

    torchrun's agent keeps one TCP store for every round of its rendezvous, and the keys a
    previous round's workers wrote there (their gloo / nccl addresses) stay after they die: the
    group torchrun restarts after a failure can read a dead worker's address and hang or fail
    in ``init_process_group`` (pytorch/pytorch#135712). So rank 0 opens a fresh store on a free
    port and announces it with a random token through the agent's store; the other ranks use
    the store that holds the announced token, retrying past a stale announcement (the notice
    is withdrawn once the group is up, so only a round that died while starting leaves one)."""
    agent = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), None,
                          False, timeout)
    key = f"lwnas/group-store/{os.environ.get('TORCHELASTIC_RUN_ID', '')}"
    if rank == 0:
        token = secrets.token_hex(16)
        own = dist.TCPStore("localhost", 0, world_size, True, timeout, wait_for_workers=False)
        own.set("lwnas/token", token)
        hosts = ",".join(dict.fromkeys([os.environ["MASTER_ADDR"], socket.gethostname()]))
        agent.set(key, f"{hosts};{own.port};{token}")
        _STORES.append((agent, key, own))
        return dist.PrefixStore("lwnas", own)
    deadline = time.monotonic() + timeout.total_seconds()
    while time.monotonic() < deadline:
        hosts, port, token = agent.get(key).decode().split(";")
        for host in hosts.split(","):
            try:
                client = dist.TCPStore(host, int(port), None, False, datetime.timedelta(seconds=2))
                if client.check(["lwnas/token"]) and client.get("lwnas/token").decode() == token:
                    return dist.PrefixStore("lwnas", client)
            except RuntimeError:  # a stale announcement: that store died with its worker
                pass
        time.sleep(0.2)
    raise TimeoutError(f"rank {rank}: rank 0's process-group store was not reachable within "
                       f"{timeout}")


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def _all_reduce(values: torch.Tensor, context: DistributedContext, op: dist.ReduceOp) -> torch.Tensor:
    """``op`` of a tensor over ranks (a copy; the input is left alone); itself in one process."""
    if not context.enabled:
        return values
    reduced = values.detach().clone()
    dist.all_reduce(reduced, op=op)
    return reduced


def all_reduce_mean(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy; the input is left alone)."""
    if not context.enabled:
        return values
    return _all_reduce(values, context, dist.ReduceOp.SUM) / context.world_size


def all_reduce_sum(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    return _all_reduce(values, context, dist.ReduceOp.SUM)


def all_reduce_max(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    return _all_reduce(values, context, dist.ReduceOp.MAX)


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


def on_rank_zero(context: DistributedContext, check: Callable[[], Any]) -> Any:
    """Run ``check`` on rank 0 and hand its result, or the user's error it raised, to every rank,
    so all ranks fail together with the same message instead of waiting for each other."""
    outcome: tuple[str, Any] = ("ok", None)
    if context.is_main:
        try:
            outcome = ("ok", check())
        except (OSError, ValueError, OutputDirectoryError) as error:
            outcome = ("error", error)
    kind, value = broadcast_object(outcome, context)
    if kind == "error":
        raise value
    return value


def say(context: DistributedContext, message: str) -> None:
    """Print a progress line on rank 0 only."""
    if context.is_main:
        print(message, flush=True)


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
