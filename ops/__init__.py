"""Lightweight op library, one code path for 2D and 3D (``spatial_dims`` 2 or 3).

- Search ops: ``build(name, channels, stride, spatial_dims, norm, act)`` over a name registry;
  ``SEARCH_OPS`` is the ordered search space of Auto-LW-MISN, ``DARTS_OPS`` DARTS' own.
- Building units of the hand-designed networks: ``build_unit(name, spatial_dims, in, out, stride)``.
"""
from . import (  # noqa: F401  (register)
    conv_block,
    ghost,
    primitives,
    res2,
    resnet,
    selective_kernel,
    shuffle,
)
from .conv_block import ConvBlock
from .fiber import DilatedMultiFiberUnit, MultiFiberShuffleUnit, MultiFiberUnit, planar_kernel
from .ghost import GhostModule
from .layers import (
    ConvNormAct,
    LayerSpec,
    NormActConv,
    act_layer,
    avg_pool,
    check_spatial_dims,
    conv,
    conv_transpose,
    dropout,
    global_avg_pool,
    max_pool,
    norm_layer,
    pad_to_match,
    upsample,
)
from .primitives import ActConvNorm, DilatedConv, FactorizedReduce, SeparableConv, Zero
from .registry import OPS, UNITS, Registry, build, build_unit, list_ops, list_units, register, register_unit
from .res2 import HierarchicalSplitConv, MultiFiberRes2Unit, Res2Unit
from .resnet import ResNetGroupNormBlock
from .selective_kernel import SelectiveKernel
from .shuffle import ChannelShuffle, ShuffleUnit, channel_shuffle
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm

#: The search space of seed 002 (Auto-LW-MISN), in the order alphas are indexed.
SEARCH_OPS: tuple[str, ...] = (
    "none", "skip_connect", "max_pool_3x3", "dil_conv_3x3", "sep_conv_3x3", "ghost", "sk",
    "shuffle_conv_3x3",
)
#: DARTS' op set, for the comparison space (seed Table 5) and the Table 1 averages.
DARTS_OPS: tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
    "dil_conv_3x3", "dil_conv_5x5",
)
#: Ops without parameters, counted when guarding the search against collapse.
PARAMETER_FREE_OPS: frozenset[str] = frozenset(
    {"none", "skip_connect", "max_pool_3x3", "avg_pool_3x3"})

__all__ = [
    "SEARCH_OPS", "DARTS_OPS", "PARAMETER_FREE_OPS", "Registry", "OPS", "UNITS", "build", "build_unit", "list_ops",
    "list_units", "register", "register_unit", "LayerSpec", "check_spatial_dims", "conv",
    "conv_transpose", "norm_layer", "act_layer", "max_pool", "avg_pool", "global_avg_pool",
    "dropout", "upsample", "pad_to_match", "NormActConv", "ConvNormAct", "ActConvNorm", "Zero",
    "FactorizedReduce", "DilatedConv", "SeparableConv", "GhostModule", "SelectiveKernel",
    "ShuffleUnit", "ChannelShuffle", "channel_shuffle", "MultiFiberUnit",
    "MultiFiberShuffleUnit", "DilatedMultiFiberUnit", "HierarchicalSplitConv", "Res2Unit",
    "MultiFiberRes2Unit", "ResNetGroupNormBlock", "planar_kernel", "SyncBatchNorm",
    "convert_sync_batchnorm", "ConvBlock",
]
