"""Myronenko's encoder-decoder with a VAE regulariser (seed 001, BraTS 2018 winner).

Seed 001 Table 1, for the default ``base_channels=32`` at its 160x192x128 crop:

- encoder: 3x3x3 conv in -> 32, spatial dropout 0.2, then levels of 1, 2, 2, 4 ResNet blocks
  (GroupNorm(8) -> ReLU -> 3x3x3 conv, twice, plus identity; ``ops.ResNetGroupNormBlock``) at
  32, 64, 128, 256 filters, each level after the first entered by a stride-2 3x3x3 conv;
  the endpoint is 256 x 20x24x16;
- decoder: per level a 1x1x1 conv halving the filters, trilinear x2, the encoder output of that
  level added, one ResNet block; a 1x1x1 conv to 3 region channels (WT, TC, ET; the paper's
  sigmoid is applied by the loss / inference, the network returns logits);
- VAE branch (training only): GroupNorm -> ReLU -> stride-2 3x3x3 conv to 16 filters
  (16 x 10x12x8), a dense layer to 256 = 128 means + 128 log-variances, a sample, a dense layer
  back to 16 x 10x12x8, ReLU, 1x1x1 conv to 256 filters, trilinear x2, then the decoder's
  structure without skips, and a 1x1x1 conv reconstructing the ``in_channels`` input.

The dense layers fix the training input size (``input_size``); at evaluation only the
segmentation path runs, on any size (zero-padded to a multiple of 8, logits cropped back).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import nn

import ops
from ops import LayerSpec

from .common import pad_to_multiple
from .registry import register_model


class VAEOutput(NamedTuple):
    """Training-mode output; ``segmentation`` first, so ``output[0]`` is the logits."""

    segmentation: torch.Tensor
    reconstruction: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


def _resnet_blocks(dims: int, channels: int, count: int, norm: LayerSpec,
                   act: LayerSpec) -> nn.Sequential:
    return nn.Sequential(*(ops.build_unit("resnet_gn", dims, channels, channels, norm=norm,
                                          act=act) for _ in range(count)))


class _UpLevel(nn.Module):
    """1x1 conv halving the filters, x2 trilinear upsampling, then optional skip addition and
    ResNet blocks (the decoder's and the VAE decoder's level)."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, blocks: int,
                 norm: LayerSpec, act: LayerSpec) -> None:
        super().__init__()
        self.reduce = ops.conv(dims, in_channels, out_channels, 1)
        self.upsample = ops.upsample(2, dims, "linear")
        self.blocks = _resnet_blocks(dims, out_channels, blocks, norm, act)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        y = self.upsample(self.reduce(x))
        if skip is not None:
            y = ops.pad_to_match(y, skip) + skip
        return self.blocks(y)


class VariationalBranch(nn.Module):
    """Encoder endpoint -> (reconstruction, mu, logvar): seed 001's VD, VDraw, VU, VUp/VBlock
    and Vend layers. ``endpoint_size`` is the spatial size of the encoder endpoint."""

    def __init__(self, dims: int, widths: Sequence[int], out_channels: int,
                 endpoint_size: Sequence[int], reduced_channels: int = 16,
                 latent_dim: int = 128, norm: LayerSpec = ("group", {"num_groups": 8}),
                 act: LayerSpec = "relu") -> None:
        super().__init__()
        self.reduced_shape = (reduced_channels,) + tuple(-(-s // 2) for s in endpoint_size)
        flat = math.prod(self.reduced_shape)
        self.reduce = ops.NormActConv(dims, widths[-1], reduced_channels, 3, 2, norm=norm,
                                      act=act)
        self.encode = nn.Linear(flat, 2 * latent_dim)
        self.decode = nn.Linear(latent_dim, flat)
        self.decode_act = ops.act_layer(act)
        self.expand = ops.conv(dims, reduced_channels, widths[-1], 1)
        self.upsample = ops.upsample(2, dims, "linear")
        self.up = nn.ModuleList(
            _UpLevel(dims, deeper, shallower, 1, norm, act)
            for deeper, shallower in zip(widths[:0:-1], widths[-2::-1]))
        self.head = ops.conv(dims, widths[0], out_channels, 1, bias=True)

    def forward(self, endpoint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        statistics = self.encode(self.reduce(endpoint).flatten(1))
        mu, logvar = statistics.chunk(2, dim=1)
        # reparameterisation: the sample stays differentiable in mu and logvar
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        y = self.decode_act(self.decode(z)).view(-1, *self.reduced_shape)
        y = self.upsample(self.expand(y))
        for level in self.up:
            y = level(y)
        return self.head(y), mu, logvar


@register_model("vae_unet")
class VAEUNet(nn.Module):
    """Myronenko's network. In training mode: :class:`VAEOutput` (segmentation logits,
    reconstruction, mu, logvar), inputs must be exactly ``input_size``; in evaluation mode:
    the segmentation logits only, any input size. ``vae=False`` drops the branch altogether."""

    output_activation = "sigmoid"

    def __init__(self, in_channels: int = 4, num_classes: int = 3,
                 input_size: Sequence[int] = (160, 192, 128), base_channels: int = 32,
                 blocks_down: Sequence[int] = (1, 2, 2, 4), blocks_up: Sequence[int] = (1, 1, 1),
                 dropout: float = 0.2, vae: bool = True, latent_dim: int = 128,
                 vae_reduced_channels: int = 16,
                 norm: LayerSpec = ("group", {"num_groups": 8}), act: LayerSpec = "relu",
                 spatial_dims: int = 3) -> None:
        super().__init__()
        dims = ops.check_spatial_dims(spatial_dims)
        if len(blocks_up) != len(blocks_down) - 1:
            raise ValueError(f"one decoder level per encoder level but the deepest: "
                             f"blocks_up needs {len(blocks_down) - 1} entries, got {blocks_up}")
        self.num_classes = num_classes
        self.size_multiple = 2 ** (len(blocks_down) - 1)
        self.input_size = tuple(int(s) for s in input_size)
        if len(self.input_size) != dims:
            raise ValueError(f"input_size needs {dims} values, got {self.input_size}")
        vae_multiple = 2 * self.size_multiple  # the VAE's own stride-2 conv halves once more
        if vae and any(s % vae_multiple for s in self.input_size):
            raise ValueError(f"input_size {self.input_size} must be divisible by {vae_multiple}")
        widths = [base_channels * 2 ** level for level in range(len(blocks_down))]

        self.stem = nn.Sequential(ops.conv(dims, in_channels, widths[0], 3),
                                  ops.dropout(dims, dropout))
        self.down = nn.ModuleList()
        for level, (width, count) in enumerate(zip(widths, blocks_down)):
            entry = [] if level == 0 else [ops.conv(dims, widths[level - 1], width, 3, 2)]
            self.down.append(nn.Sequential(*entry, *_resnet_blocks(dims, width, count, norm,
                                                                   act)))
        self.up = nn.ModuleList(
            _UpLevel(dims, widths[level + 1], widths[level], blocks_up[level], norm, act)
            for level in reversed(range(len(blocks_up))))
        self.head = ops.conv(dims, widths[0], num_classes, 1, bias=True)
        endpoint = tuple(s // self.size_multiple for s in self.input_size)
        self.vae = (VariationalBranch(dims, widths, in_channels, endpoint, vae_reduced_channels,
                                      latent_dim, norm, act) if vae else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor | VAEOutput:
        use_vae = self.training and self.vae is not None
        if use_vae and tuple(x.shape[2:]) != self.input_size:
            raise ValueError(
                f"vae_unet in training mode needs inputs of exactly {self.input_size} (its VAE "
                f"branch has dense layers sized for them), got {tuple(x.shape[2:])}: crop the "
                f"training patches to that size, build it with input_size={tuple(x.shape[2:])}, "
                f"or call .eval() to segment inputs of any size")
        y = self.stem(pad_to_multiple(x, self.size_multiple))
        skips = []
        for level in self.down:
            y = level(y)
            skips.append(y)
        endpoint = y
        for level, skip in zip(self.up, reversed(skips[:-1])):
            y = level(y, skip)
        segmentation = ops.pad_to_match(self.head(y), x)
        if not use_vae:
            return segmentation
        reconstruction, mu, logvar = self.vae(endpoint)
        return VAEOutput(segmentation, reconstruction, mu, logvar)
