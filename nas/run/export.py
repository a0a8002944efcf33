"""``lwnas export``: a checkpoint's network, or a folds run's ensemble, as ONNX or TorchScript,
with a JSON sidecar.

The network is rebuilt from the checkpoint's inference description (``nas.run.networks``),
in eval mode, fp32, on the CPU, and traced with an input of its training size. The file takes
``image`` (N, C, *spatial) float32, already preprocessed as the sidecar says, and returns
``logits`` (N, K, *spatial); the batch axis is dynamic, and so are the spatial axes where the
network allows (``spatial_multiple``: sizes that are multiples of it). ``FILE.json`` holds what a
user of the file needs: preprocessing, label map (activation and decision), input and output
description, the network (genotype), dataset and version, and the check made after export (the
exported file run on the example input against the network's own forward).

Why ONNX goes through torch's TorchScript-based exporter (``dynamo=False``): the dynamo exporter,
torch's default, needs the ``onnxscript`` package, and the traced graphs here hold nothing it
would export better. The one op whose trace needed a change is ``supernet.cells.resample_to``
(its pooling kernel is now a Python int, so the graph holds a constant kernel; same math).
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

import nas
from nas.train import atomic_path, atomic_write_text
from nas.train.optional import require_package

from .fold_layout import fold_checkpoints
from .networks import load_predictor

FORMATS = ("onnx", "torchscript")
INPUT_NAME, OUTPUT_NAME = "image", "logits"
ONNX_OPSET = 17
#: Example inputs are drawn with this seed (the check in the sidecar is reproducible).
EXAMPLE_SEED = 0
#: An exported graph whose output on a larger input differs from the network's by more than this
#: (relative to the largest output, at least 1) was traced with a size-dependent constant: it is
#: exported again with a fixed spatial size. Float rounding stays orders of magnitude below it.
CHECK_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ExportReport:
    """The written file and sidecar, and how far the exported file's output on the example input
    is from the network's own (``None`` where the runtime to check with is not installed)."""

    path: Path
    sidecar: Path
    max_abs_difference: float | None
    dynamic_spatial: bool = True


def spatial_multiple(spec: Mapping[str, Any], network: nn.Module) -> int:
    """The spatial sizes an exported network holds are multiples of this. Genotype U networks pool
    once per encoder level and resample between levels by the level ratio, which the trace fixes;
    the named networks pad an input to their ``size_multiple`` and crop back, and a trace fixes the
    padding of the example (none), so their graphs hold the sizes that need none."""
    entry = spec["network"]
    if entry["kind"] == "genotype":
        genotype = entry["genotype"]
        if genotype["space"] == "unet":
            return 2 ** int(genotype["layout"]["encoder"])
        return 2 ** 2  # DARTS stack: two reduction cells
    return int(getattr(network, "size_multiple", 1))


def _dynamic_axes(spatial_dims: int) -> dict[str, dict[int, str]]:
    """The batch axis, and the last ``spatial_dims`` axes (0: none) named."""
    names = ("depth", "height", "width")[3 - spatial_dims:]
    axes = {0: "batch", **{2 + index: name for index, name in enumerate(names)}}
    return {INPUT_NAME: axes, OUTPUT_NAME: dict(axes)}


def example_input(spec: Mapping[str, Any], batch: int = 1) -> torch.Tensor:
    """A seeded standard-normal input of the training size (what a preprocessed image looks like)."""
    generator = torch.Generator().manual_seed(EXAMPLE_SEED)
    shape = (batch, int(spec["network"]["in_channels"]), *(int(v) for v in spec["input"]["size"]))
    return torch.randn(shape, generator=generator)


def _checked_inputs(example: torch.Tensor, multiple: int) -> list[torch.Tensor]:
    """The example, and a batch of two one ``multiple`` larger per spatial axis (the dynamic axes)."""
    generator = torch.Generator().manual_seed(EXAMPLE_SEED + 1)
    larger = (2, example.shape[1], *(size + multiple for size in example.shape[2:]))
    return [example, torch.randn(larger, generator=generator)]


def _difference(run, network: nn.Module, inputs: list[torch.Tensor]) -> tuple[float, float]:
    """(max abs difference of the exported file's outputs to the network's, max abs output)."""
    difference = scale = 0.0
    with torch.no_grad():
        for x in inputs:
            expected = network(x).numpy()
            difference = max(difference, float(np.abs(np.asarray(run(x)) - expected).max()))
            scale = max(scale, float(np.abs(expected).max()))
    return difference, scale


def _export_onnx(network: nn.Module, example: torch.Tensor, path: Path, spatial_dims: int,
                 dynamic_spatial: bool) -> None:
    onnx = require_package("onnx", "--format onnx", "export")
    axes = _dynamic_axes(spatial_dims if dynamic_spatial else 0)
    with atomic_path(path, suffix=".onnx") as temporary, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints read from shapes
        torch.onnx.export(network, (example,), str(temporary), dynamo=False, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes=axes, opset_version=ONNX_OPSET,
                          do_constant_folding=True)
        onnx.checker.check_model(str(temporary))


def _onnx_runner(path: Path):
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]


def _export_torchscript(network: nn.Module, example: torch.Tensor, path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings; torch.jit's deprecation in torch >= 2.10
        traced = torch.jit.trace(network, example, check_trace=False)
        with atomic_path(path, suffix=".pt") as temporary:
            torch.jit.save(traced, str(temporary))


def _torchscript_runner(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path))
    return lambda x: loaded(x).detach().numpy()


def _export(fmt: str, network: nn.Module, spec: Mapping[str, Any], output: Path) -> tuple[float | None, bool]:
    """Export, then run the file on the example and on a larger batch of a larger size: where the
    larger input fails or differs (a size the traced graph does not hold), export again with a
    fixed spatial size. Returns (max abs difference over the inputs checked, spatial dynamic)."""
    example = example_input(spec)
    dims = int(spec["spatial_dims"])

    def export(dynamic: bool):
        if fmt == "onnx":
            _export_onnx(network, example, output, dims, dynamic)
            return _onnx_runner(output)
        _export_torchscript(network, example, output)
        return _torchscript_runner(output)

    run = export(dynamic=True)
    if run is None:  # onnxruntime not installed: unchecked
        return None, True
    try:
        difference, scale = _difference(run, network, _checked_inputs(example, spatial_multiple(spec, network)))
    except Exception:  # the runtime refuses the larger input: not a size this graph holds
        difference, scale = math.inf, 0.0
    if difference <= CHECK_TOLERANCE * max(1.0, scale):
        return difference, True
    run = export(dynamic=False)
    batch = example.repeat(2, *([1] * (example.dim() - 1)))
    return (None if run is None else _difference(run, network, [example, batch])[0]), False


def sidecar_of(spec: Mapping[str, Any], fmt: str, path: Path, checkpoint: Path, difference: float | None,
               multiple: int | None) -> dict[str, Any]:
    """The JSON sidecar of an exported file (``multiple``: the spatial multiple the file holds, None
    for a fixed spatial size)."""
    dims = int(spec["spatial_dims"])
    dynamic_spatial = multiple is not None
    axes = _dynamic_axes(dims if dynamic_spatial else 0)[INPUT_NAME]
    return {
        "format": fmt, "file": path.name, "lwnas_version": nas.__version__, "dataset": spec["dataset"],
        "source_checkpoint": str(checkpoint),
        "input": {"name": INPUT_NAME, "dtype": "float32", "layout": ["N", "C", *("D", "H", "W")[-dims:]],
                  "channels": spec["input"]["channels"], "size": spec["input"]["size"],
                  "dynamic_axes": {str(axis): name for axis, name in axes.items()},
                  "spatial_multiple": multiple,
                  "note": ("preprocessed as 'preprocessing' says; spatial sizes: multiples of spatial_multiple"
                           if dynamic_spatial else "preprocessed as 'preprocessing' says; spatial size fixed to "
                           "'size' (the traced graph holds no other)")},
        "output": {"name": OUTPUT_NAME, "channels": spec["network"]["num_classes"],
                   "activation": spec["labels"]["activation"], "decision": spec["labels"]["decision"]},
        "preprocessing": spec["preprocessing"], "labels": spec["labels"], "network": spec["network"],
        "genotype": spec["network"].get("genotype"),
        "check": {"input": f"standard normal of the training size, seed {EXAMPLE_SEED}",
                  "runtime": "onnxruntime" if fmt == "onnx" else "torch.jit.load",
                  "inputs": "the example, and a batch of 2" + (" one spatial_multiple larger per axis"
                                                                if dynamic_spatial else ""),
                  "max_abs_difference": difference},
        **({"ensemble": spec["ensemble"]} if "ensemble" in spec else {}),
    }


def export_checkpoint(checkpoint: str | Path, fmt: str, output: str | Path,
                      folds: Sequence[int] | None = None) -> ExportReport:
    """Write the checkpoint's network to ``output`` as ``fmt`` (``onnx`` or ``torchscript``) and
    its sidecar to ``output + ".json"``; checks the exported file against the network.

    ``checkpoint`` may be a folds run's directory (``retrain.py --folds``): one module holds its
    ``folds`` (default all) and returns the logits of the mean of their probabilities
    (``nas.inference.FoldEnsemble``), checked against the torch ensemble as one network is; the
    sidecar's ``ensemble`` names the folds and the rule. :func:`export_each_fold` writes them
    one by one instead."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    checkpoint, output = Path(checkpoint), Path(output)
    network, spec = load_predictor(checkpoint, "cpu", folds=folds)
    network = network.float().eval()
    output.parent.mkdir(parents=True, exist_ok=True)
    difference, dynamic = _export(fmt, network, spec, output)
    sidecar = output.with_name(output.name + ".json")
    described = sidecar_of(spec, fmt, output, checkpoint, difference, spatial_multiple(spec, network) if dynamic
                           else None)
    atomic_write_text(sidecar, json.dumps(described, indent=2) + "\n")
    return ExportReport(output, sidecar, difference, dynamic)


def export_each_fold(run: str | Path, fmt: str, output: str | Path,
                     folds: Sequence[int] | None = None) -> list[ExportReport]:
    """Write each of ``folds`` (default all) of the folds run ``run`` as its own file: ``output``
    with ``_fold<i>`` before its suffix (``net.onnx`` -> ``net_fold0.onnx``), each with its sidecar."""
    output = Path(output)
    suffix = "".join(output.suffixes)
    stem = output.name[:len(output.name) - len(suffix)] if suffix else output.name
    return [export_checkpoint(path, fmt, output.with_name(f"{stem}_{path.parent.name.replace('_', '')}{suffix}"))
            for path in fold_checkpoints(run, folds)]


__all__ = ["EXAMPLE_SEED", "ExportReport", "FORMATS", "INPUT_NAME", "ONNX_OPSET", "OUTPUT_NAME", "example_input",
           "export_checkpoint", "export_each_fold", "sidecar_of", "spatial_multiple"]
