"""The papers' complexity tables, reproduced from code with the published figures beside ours.

Published figures are data here; our figures come from :mod:`nas.complexity` on the real
modules. Networks are profiled on the ``meta`` device: shapes propagate without arithmetic, so
a 4 x 128^3 input costs nothing to count.
"""
from __future__ import annotations

from typing import Callable, Mapping

import pandas as pd
import torch
from torch import nn

from .counting import activation_memory, flops_by_convention, measure_latency, profile

#: Seed 002 Table 1, per op at 32x32, C = 32, stride 1: (params, "FLOPs" = MACs).
SEED_TABLE1_SEARCH = {
    "sep_conv_3x3": (2.81e3, 2.68e6),
    "dil_conv_3x3": (1.41e3, 1.34e6),
    "ghost": (0.74e3, 0.67e6),
    "sk": (2.44e3, 0.65e6),
    "shuffle_conv_3x3": (0.30e3, 0.20e6),
}
SEED_TABLE1_DARTS = {
    # The seed's DARTS column lists the 3x3 and 5x5 separable rows swapped; these are the
    # figures by the kernel size that matches them.
    "sep_conv_3x3": (2.81e3, 2.68e6),
    "sep_conv_5x5": (3.86e3, 3.07e6),
    "dil_conv_3x3": (1.41e3, 1.34e6),
    "dil_conv_5x5": (1.93e3, 1.64e6),
}
SEED_TABLE1_AVERAGE = {"search": (1.54e3, 1.11e6), "darts": (2.50e3, 2.18e6)}

#: Published complexity at a 4 x 128^3 input: params, FLOPs, and how that paper counts FLOPs
#: (see ``_NOTES["models"]`` for why each convention).
PAPER_MODELS = {
    "mfnet": {"source": "DMFNet README (MFNet)", "params": 3.19e6, "flops": 20.61e9,
              "convention": "dmfnet"},
    "mfsnet": {"source": "seed 000 (MFS-Net)", "params": 3.2e6, "flops": 20.51e9,
               "convention": "thop_0.0.31"},
    "mf_res2net": {"source": "seed 004 (MF-RES2Net)", "params": 3.16e6, "flops": 16.24e9,
                   "convention": "macs"},
    "dmfnet": {"source": "DMFNet README", "params": 3.88e6, "flops": 27.04e9,
               "convention": "dmfnet"},
    "vae_unet": {"source": "seed 000 table (Myronenko)", "params": 40.06e6, "flops": 1495.53e9,
                 "convention": "macs"},
    "unet3d": {"source": "seed 000 table (3D U-Net)", "params": 16.21e6, "flops": 1669.53e9,
               "convention": "thop_0.0.31"},
}

#: Further published figures and configurations, each printed under its network's main row:
#: ``kwargs`` for the builder, ``input_size`` (spatial; default the table's cube) and
#: ``training`` (profile the train-mode forward, e.g. with a VAE branch).
PAPER_MODEL_VARIANTS = [
    {"model": "dmfnet", "label": "dmfnet", "source": "seed 000 table (DMFNet)",
     "params": 3.86e6, "flops": 26.93e9, "convention": "thop_0.0.31"},
    {"model": "vae_unet", "label": "vae_unet train 160x192x128",
     "source": "seed 000 table (Myronenko)", "params": 40.06e6, "flops": 1495.53e9,
     "convention": "macs", "input_size": (160, 192, 128), "training": True},
    {"model": "unet3d", "label": "unet3d Cicek (transposed, 2 convs)",
     "source": "seed 000 table (3D U-Net)", "params": 16.21e6, "flops": 1669.53e9,
     "convention": "thop_0.0.31",
     "kwargs": {"upsample": "transposed", "decoder_convs": (2, 2, 2)}},
    {"model": "unet3d", "label": "unet3d", "source": "seed 004 table (3D U-Net)",
     "params": 15.80e6, "flops": 1240.27e9, "convention": "macs"},
]

_NOTES = {
    "ops": (
        "FLOPs = multiply-accumulates of convs and linear layers, as the seed counts them; params\n"
        "include norm weight/bias. The seed's params run ~2-5% above ours (they appear to count\n"
        "one bias of C per conv sequence: ghost 720 + 16 = 736, dilated 1376 + 32 = 1408).\n"
        "sk: the seed's 0.65M also counts the 2 x C x H x W multiplies of the attention-weighted\n"
        "sum (591k MACs + 65.5k = 0.657M). Its 2.44k params vs our 2.32k (-5%) is not explained\n"
        "by the paper, which leaves the attention MLP's exact form (biases, norms) open.\n"
        "The seed's 5x5 FLOPs match 5x5 kernels whose maps shrink to 30x30 (dil 5x5: 0.72M +\n"
        "0.92M = 1.64M; sep 5x5 32 -> 30 -> 28: 1.64M + 1.43M = 3.07M); ours keep the size, as\n"
        "every op of a cell must, hence our DARTS average above the seed's.\n"
    ),
    "models": (
        "Params include norm weight/bias (not running statistics) and DMF's 3 dilation\n"
        "weights per unit. FLOPs count one op per multiply-add; the conventions differ in what\n"
        "else counts:\n"
        "  macs         conv + linear multiply-accumulates.\n"
        "  thop_0.0.31  macs + 2 x BN input elements (trilinear upsampling, ReLU count 0): what\n"
        "               seed 000's code prints (thop.profile at 1x4x128^3, MFSNet_MixLoss.py):\n"
        "               MFS-Net 20.50 G (paper 20.51), and its table's DMFNet 26.93 G exactly.\n"
        "  dmfnet       macs + 2 x BN + upsample output elements: the DMFNet README's MFNet\n"
        "               20.61 G and DMFNet 27.04 G, exactly.\n"
        "mfsnet is MFNet plus parameter- and MAC-free shuffles: 3,194,784 params (paper: 3.2M).\n"
        "mf_res2net has no public code: SPEC's reconstruction (widths 32/80/160/320, plain\n"
        "stride-2 convs, ops.MultiFiberRes2Unit) counts 3,138,040 / 16.11 G conv MACs. Seed 004\n"
        "writes its FLOPs formula as 2 ops per MAC, but its table copies DMFNet's 27.04 G, which\n"
        "is 1 op per MAC; read its own 16.24 G the same way (2 x MACs would be 32.2 G).\n"
        "unet3d: seed 000's 16.21M / 1669.53 G are a Cicek 3D U-Net (4 levels, 32-64, 64-128,\n"
        "128-256, 256-512, BN, max-pool, concat skips) with trilinear upsampling instead of the\n"
        "2x2x2 transposed convs and one 3x3x3 conv at the last decoder level: 16,209,988 params,\n"
        "1667.5 G MACs (1668.5 G by thop). Of the variants we enumerated (transposed/trilinear,\n"
        "1-2 convs per decoder level, widths, inputs 96-160) it is the only one within 1% of\n"
        "both, so it is our default; Cicek's paper exactly is 19.07M / 1959.6 G (+18%). Seed\n"
        "004's 15.80M / 1240.27 G stays unexplained: its FLOPs match ours scaled to a 116^3\n"
        "input (0.1%), but its params are 2.5% below ours, and no variant matches both.\n"
        "vae_unet: seed 001 fixes the structure (32 filters, 1/2/2/4 ResNet-GN blocks, VAE on a\n"
        "160x192x128 crop). Ours: 26.03M = 18.80M segmentation path + 7.23M VAE branch (5.91M of\n"
        "it the two dense layers, sized by the crop). The table's 1495.53 G is the training-time\n"
        "forward (segmentation + VAE) at that crop: 1479.0 G MACs (-1.1%, row 'vae_unet train');\n"
        "inference at 4x128^3 runs the segmentation path only, 584.6 G. The 40.06M is not\n"
        "reproduced: no configuration consistent with seed 001 that we tried (base filters\n"
        "16-64, VAE reduction 16-128 channels, crops 128^3 to 240x240x160) gives it together\n"
        "with those FLOPs; the paper's own configuration is 26.03M, 0.65x the table's figure.\n"
    ),
}


def table_notes(table: str) -> str:
    """The convention notes printed under a table."""
    return _NOTES.get(table, "")


def _ratio(ours: float, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if theirs else None


def ops_table(size: int = 32, channels: int = 32, spatial_dims: int = 2) -> pd.DataFrame:
    """Seed Table 1: params and FLOPs per op of our search space and DARTS', ours and the seed's,
    with the averages over ops that have parameters (the seed's equations 1 and 2)."""
    import ops

    input_shape = (1, channels) + (size,) * spatial_dims
    rows = []

    def add_rows(space: str, names: tuple[str, ...], seed: dict) -> None:
        counted = []
        for name in names:
            counts = profile(ops.build(name, channels, 1, spatial_dims), input_shape)
            seed_params, seed_flops = seed.get(name, (None, None))
            rows.append({
                "space": space, "op": name,
                "params_k": counts["params"] / 1e3, "seed_params_k": _k(seed_params),
                "params_ratio": _ratio(counts["params"], seed_params),
                "flops_M": counts["flops"] / 1e6, "seed_flops_M": _m(seed_flops),
                "flops_ratio": _ratio(counts["flops"], seed_flops),
            })
            if counts["params"] > 0:
                counted.append(counts)
        mean_params = sum(c["params"] for c in counted) / len(counted)
        mean_flops = sum(c["flops"] for c in counted) / len(counted)
        seed_params, seed_flops = SEED_TABLE1_AVERAGE[space]
        rows.append({
            "space": space, "op": "average (ops with params)",
            "params_k": mean_params / 1e3, "seed_params_k": _k(seed_params),
            "params_ratio": _ratio(mean_params, seed_params),
            "flops_M": mean_flops / 1e6, "seed_flops_M": _m(seed_flops),
            "flops_ratio": _ratio(mean_flops, seed_flops),
        })

    add_rows("search", ops.SEARCH_OPS, SEED_TABLE1_SEARCH)
    add_rows("darts", ops.DARTS_OPS, SEED_TABLE1_DARTS)
    return pd.DataFrame(rows).round({"params_k": 3, "flops_M": 3})


def latency_table(size: int = 32, channels: int = 32, spatial_dims: int = 2,
                  device: str = "cpu", repeats: int = 30, warmup: int = 10) -> pd.DataFrame:
    """The eight search ops on ``device``: params, FLOPs, forward latency at batch 1 (median of
    ``repeats`` after ``warmup``) and activation memory, each also as a ratio to sep_conv_3x3,
    so how far FLOPs predict latency shows at a glance (depthwise and grouped convs and
    stride-1 pools are memory-bound)."""
    import ops

    input_shape = (1, channels) + (size,) * spatial_dims
    rows = []
    for name in ops.SEARCH_OPS:
        op = ops.build(name, channels, 1, spatial_dims).to(device).eval()
        counts = profile(op, input_shape)
        timing = measure_latency(op, input_shape, device=device, repeats=repeats, warmup=warmup)
        rows.append({"op": name, "params_k": counts["params"] / 1e3,
                     "flops_M": counts["flops"] / 1e6, "latency_ms": timing["median_ms"],
                     "memory_MB": activation_memory(op.cpu(), input_shape) / 2**20})
    frame = pd.DataFrame(rows)
    reference = frame.set_index("op").loc["sep_conv_3x3"]
    for column, ratio in (("flops_M", "flops_ratio"), ("latency_ms", "latency_ratio"),
                          ("memory_MB", "memory_ratio")):
        frame[ratio] = frame[column] / reference[column]
    return frame.round({"params_k": 3, "flops_M": 3, "latency_ms": 4, "memory_MB": 4,
                        "flops_ratio": 3, "latency_ratio": 3, "memory_ratio": 3})


def _k(value: float | None) -> float | None:
    return None if value is None else value / 1e3


def _m(value: float | None) -> float | None:
    return None if value is None else value / 1e6


def _model_row(label: str, name: str | Callable[[], nn.Module], paper: dict, size: int,
               in_channels: int) -> dict:
    import models

    spatial = tuple(paper.get("input_size") or (size,) * 3)
    training = bool(paper.get("training", False))
    with torch.device("meta"):
        network = (name() if callable(name) else
                   models.build(name, in_channels=in_channels, **paper.get("kwargs", {})))
    counts = profile(network, (1, in_channels) + spatial, training=training)
    convention = paper.get("convention", "macs")
    flops_paper_convention = flops_by_convention(counts, convention)
    return {
        "model": label,
        "input": f"{in_channels}x" + "x".join(map(str, spatial)) + (" train" if training else ""),
        "params_M": counts["params"] / 1e6,
        "paper_params_M": paper.get("params", float("nan")) / 1e6,
        "params_ratio": _ratio(counts["params"], paper.get("params")),
        "macs_G": counts["macs"] / 1e9,
        "flops_G (paper's convention)": flops_paper_convention / 1e9,
        "paper_flops_G": paper.get("flops", float("nan")) / 1e9,
        "flops_ratio": _ratio(flops_paper_convention, paper.get("flops")),
        "convention": convention, "source": paper.get("source", ""),
    }


def models_table(size: int = 128, in_channels: int = 4,
                 networks: Mapping[str, tuple[Callable[[], nn.Module], int]] | None = None
                 ) -> pd.DataFrame:
    """Each registered 3D network at ``in_channels x size^3``: our params and FLOPs (MACs, and
    by the paper's own convention) beside the published figures, then the further published
    figures and configurations of :data:`PAPER_MODEL_VARIANTS` under their network's row,
    then ``networks`` (label -> (builder, input channels), e.g. the fixed networks of searched
    3D genotypes), counted the same way (MACs; no paper figure).
    Networks are built and profiled on the ``meta`` device (no arithmetic, instant)."""
    import models

    rows = []
    for name in models.list_models():
        rows.append(_model_row(name, name, PAPER_MODELS.get(name, {}), size, in_channels))
        for variant in PAPER_MODEL_VARIANTS:
            if variant["model"] == name:
                rows.append(_model_row(variant["label"], name, variant, size, in_channels))
    for label, (builder, channels) in (networks or {}).items():
        rows.append(_model_row(label, builder, {"source": "searched (lwnas search)"}, size,
                               channels))
    return pd.DataFrame(rows).round(3)
