"""Complexity of any ``nn.Module``: parameters, multiply-accumulates (the papers' "FLOPs"),
latency and memory, counted analytically per layer in 2D and 3D. Imports torch only; the
papers' tables (which need the op library and the networks) are in
:mod:`nas.complexity.paper_tables`, printed by ``lwnas complexity``."""
from .counting import (
                       FLOP_CONVENTIONS,
                       activation_memory,
                       count_parameters,
                       flops_by_convention,
                       layer_macs,
                       measure_latency,
                       peak_cuda_memory,
                       profile,
                       profile_layers,
                       summarize_layers,
)
from .device import cpu_model, device_description

__all__ = ["FLOP_CONVENTIONS", "activation_memory", "count_parameters", "flops_by_convention",
           "layer_macs", "measure_latency", "peak_cuda_memory", "profile", "profile_layers",
           "summarize_layers", "cpu_model", "device_description"]
