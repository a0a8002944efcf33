"""What a measurement ran on: the CPU model or GPU name, and the threads torch used. Latency
tables are keyed by it, and every benchmark records it."""
from __future__ import annotations

import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: torch.device | str) -> str:
    """The GPU's name, or the CPU model and the threads torch uses."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU {cpu_model()}, {threads} torch thread{'s' if threads > 1 else ''}"
