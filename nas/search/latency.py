"""Per-op latency and activation-memory tables for latency- and memory-aware search.

FLOPs predict the speed of lightweight ops poorly: grouped and depthwise convolutions are
memory-bound, and on a CPU a stride-1 3x3 max-pool costs more than a 1x1 convolution. So the
search can weigh what an op costs where the network will run: each op is timed on the target
device at its edge's width, feature-map size and stride, batch 1, as the median of repeated
runs after a warm-up (``nas.complexity.measure_latency``). The table is cached on disk, keyed
by the device, torch version and threads, so a second search on the same machine measures
nothing. Activation memory (``nas.complexity.activation_memory``: the bytes a training
forward pass saves) is exact and device-independent in fp32, so it needs no cache.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch
from torch import nn

import ops
from nas.complexity import activation_memory, device_description, measure_latency

#: Timed forward passes per op (median), after the warm-up ones.
REPEATS = 15
WARMUP = 5


def _write_json(path: Path, payload: dict) -> None:
    """Write beside and rename, so a concurrent search never reads a torn table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, indent=1, sort_keys=True))
    os.replace(temporary, path)


class LatencyTable:
    """Milliseconds of ops and modules on one device, measured once and cached.

    ``cache_dir`` None keeps the table in memory only. ``measured`` counts the measurements
    this table made (0 when everything came from the cache).
    """

    def __init__(self, device: torch.device | str, cache_dir: str | os.PathLike | None = None,
                 repeats: int = REPEATS, warmup: int = WARMUP) -> None:
        self.device = torch.device(device)
        self.repeats, self.warmup = repeats, warmup
        self.identity = {"device": device_description(self.device),
                         "torch": torch.__version__, "threads": torch.get_num_threads(),
                         "repeats": repeats, "warmup": warmup}
        digest = hashlib.sha1(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()
        self.path = Path(cache_dir) / f"latency-{digest[:16]}.json" if cache_dir else None
        self.entries: dict[str, float] = {}
        if self.path is not None and self.path.is_file():
            try:
                self.entries = dict(json.loads(self.path.read_text())["entries"])
            except (ValueError, KeyError, TypeError):
                self.entries = {}  # a damaged cache is measured again, not trusted
        self.measured = 0

    def _lookup(self, key: str, build: Callable[[], nn.Module], input_shape: tuple[int, ...]
                ) -> float:
        if key not in self.entries:
            module = build().to(self.device).eval()
            timing = measure_latency(module, input_shape, device=self.device,
                                     warmup=self.warmup, repeats=self.repeats)
            self.entries[key] = float(timing["median_ms"])
            self.measured += 1
            if self.path is not None:
                _write_json(self.path, {"identity": self.identity, "entries": self.entries})
        return self.entries[key]

    def op_ms(self, name: str, channels: int, stride: int, spatial_size: tuple[int, ...]
              ) -> float:
        """Forward time (ms) of op ``name`` at ``channels`` on a ``spatial_size`` map, batch 1."""
        size = tuple(int(s) for s in spatial_size)
        key = f"op|{name}|{channels}|{stride}|{'x'.join(map(str, size))}"
        return self._lookup(key, lambda: ops.build(name, channels, stride, len(size)),
                            (1, channels) + size)

    def module_ms(self, tag: str, build: Callable[[], nn.Module],
                  input_shape: tuple[int, ...]) -> float:
        """Forward time (ms) of a module identified by ``tag`` (it must say everything that
        determines the module, e.g. the network's layout and widths) at ``input_shape``."""
        key = f"module|{tag}|{'x'.join(map(str, input_shape))}"
        return self._lookup(key, build, tuple(input_shape))


@lru_cache(maxsize=4096)
def op_memory_mb(name: str, channels: int, stride: int, spatial_size: tuple[int, ...]) -> float:
    """Activation memory (MB) one op saves for backward at batch 1 (fp32, exact)."""
    op = ops.build(name, channels, stride, len(spatial_size))
    return activation_memory(op, (1, channels) + tuple(spatial_size)) / 2**20


def derived_costs(genotype, input_shape: tuple[int, ...], latency: LatencyTable | None = None,
                  memory: bool = False) -> dict[str, float]:
    """Measured latency (ms, on the latency table's device, batch 1) and activation memory
    (MB) of the network a genotype describes, for the run's log and ``genotype.json``."""
    from supernet import from_genotype

    result: dict[str, float] = {}
    if latency is None and not memory:
        return result
    network = from_genotype(genotype)
    shape = (1,) + tuple(input_shape)
    if latency is not None:
        timing = measure_latency(network.to(latency.device), shape, device=latency.device,
                                 warmup=latency.warmup, repeats=latency.repeats)
        result["latency_ms"] = float(timing["median_ms"])
    if memory:
        result["memory_MB"] = activation_memory(network.cpu(), shape) / 2**20
    return result
