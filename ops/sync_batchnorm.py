"""Synchronised batch norm for any device and process group (gloo on CPU, nccl on CUDA).

torch's ``nn.SyncBatchNorm`` accepts CUDA tensors only; this one runs wherever
``torch.distributed`` does. Forward all-reduces per-channel [sum x, sum x^2, count] in one call
(as seed 000's SyncBN does); backward all-reduces [sum dy, sum dy * x_hat] in one call, so the
statistics and gradients equal plain batch norm over the batches of all ranks together.
Outside a process group (or in eval mode) it is plain batch norm.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _reduce_axes(x: torch.Tensor) -> list[int]:
    return [0] + list(range(2, x.dim()))


def _per_channel(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.view(1, -1, *([1] * (x.dim() - 2)))


class _SyncBatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps, group):
        channels = x.shape[1]
        axes = _reduce_axes(x)
        x32 = x.float()
        local = torch.cat([x32.sum(axes), (x32 * x32).sum(axes),
                           x32.new_full((1,), x.numel() // channels)])
        dist.all_reduce(local, group=group)
        count = local[-1]
        mean = local[:channels] / count
        var = (local[channels: 2 * channels] / count - mean * mean).clamp_min(0)
        invstd = torch.rsqrt(var + eps)
        x_hat = (x32 - _per_channel(mean, x)) * _per_channel(invstd, x)
        out = x_hat
        if weight is not None:
            out = out * _per_channel(weight.float(), x) + _per_channel(bias.float(), x)
        ctx.save_for_backward(x_hat, weight, invstd, count)
        ctx.group = group
        return out.to(x.dtype), mean, var, count

    @staticmethod
    def backward(ctx, grad_out, _grad_mean, _grad_var, _grad_count):
        x_hat, weight, invstd, count = ctx.saved_tensors
        axes = _reduce_axes(grad_out)
        grad_out32 = grad_out.float()
        grad_weight = grad_bias = None
        if weight is not None:
            grad_weight = (grad_out32 * x_hat).sum(axes).to(weight.dtype)
            grad_bias = grad_out32.sum(axes).to(weight.dtype)
            grad_x_hat = grad_out32 * _per_channel(weight.float(), grad_out)
        else:
            grad_x_hat = grad_out32
        channels = grad_out.shape[1]
        sums = torch.cat([grad_x_hat.sum(axes), (grad_x_hat * x_hat).sum(axes)])
        dist.all_reduce(sums, group=ctx.group)
        mean_grad = _per_channel(sums[:channels] / count, grad_out)
        mean_grad_x_hat = _per_channel(sums[channels:] / count, grad_out)
        grad_x = _per_channel(invstd, grad_out) * (grad_x_hat - mean_grad - x_hat * mean_grad_x_hat)
        return grad_x.to(grad_out.dtype), grad_weight, grad_bias, None, None


class SyncBatchNorm(_BatchNorm):
    """Batch norm whose training statistics span every rank of ``process_group``."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 process_group=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"SyncBatchNorm expects (N, C, ...) input, got {tuple(x.shape)}")

    def _synchronised(self) -> bool:
        return (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size(self.process_group) > 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self._synchronised():
            return super().forward(x)
        out, mean, var, count = _SyncBatchNormFunction.apply(
            x, self.weight, self.bias, self.eps, self.process_group)
        if self.track_running_stats:
            with torch.no_grad():
                momentum = _momentum(self)
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.mul_(1 - momentum).add_(mean.to(self.running_mean.dtype),
                                                          alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased.to(self.running_var.dtype),
                                                         alpha=momentum)
        return out


def _momentum(norm: _BatchNorm) -> float:
    """Count one more training batch (where the norm keeps a count: a norm with a fixed
    momentum may drop it) and return the running statistics' update factor."""
    if norm.num_batches_tracked is not None:
        norm.num_batches_tracked.add_(1)
    if norm.momentum is None:  # cumulative average
        return 1.0 / float(norm.num_batches_tracked)
    return norm.momentum


def batch_norm_channels(norm: _BatchNorm, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``norm`` applied to ``x`` whose channels are ``norm``'s channels ``index`` only (a
    subset, in that order): the norm of those channels alone, as separate norms would give,
    using and updating only their statistics and affine parameters; synchronised over the
    process group like :class:`SyncBatchNorm` where that is one and running in one."""
    weight = None if norm.weight is None else norm.weight[index]
    bias = None if norm.bias is None else norm.bias[index]
    tracking = norm.training and norm.track_running_stats
    if isinstance(norm, SyncBatchNorm) and norm._synchronised():
        out, mean, var, count = _SyncBatchNormFunction.apply(x, weight, bias, norm.eps,
                                                             norm.process_group)
        if tracking:
            with torch.no_grad():
                momentum = _momentum(norm)
                unbiased = var * count / (count - 1).clamp_min(1)
                for buffer, batch in ((norm.running_mean, mean), (norm.running_var, unbiased)):
                    buffer.index_copy_(0, index, buffer[index] * (1 - momentum)
                                       + batch.to(buffer.dtype) * momentum)
        return out
    mean = var = None
    if norm.track_running_stats:
        mean, var = norm.running_mean[index], norm.running_var[index]
    momentum = 0.0
    if tracking:
        with torch.no_grad():
            momentum = _momentum(norm)
    out = nn.functional.batch_norm(x, mean, var, weight, bias,
                                   norm.training or not norm.track_running_stats, momentum,
                                   norm.eps)
    if tracking:  # batch_norm updated the gathered copies; write them back
        with torch.no_grad():
            norm.running_mean.index_copy_(0, index, mean)
            norm.running_var.index_copy_(0, index, var)
    return out


def convert_sync_batchnorm(module: nn.Module, process_group=None) -> nn.Module:
    """Replace every batch norm layer of ``module`` by :class:`SyncBatchNorm`, keeping its
    parameters and running statistics (``nn.SyncBatchNorm.convert_sync_batchnorm``'s job for
    any device)."""
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        converted = SyncBatchNorm(module.num_features, module.eps, module.momentum,
                                  module.affine, module.track_running_stats, process_group)
        with torch.no_grad():
            if module.affine:
                converted.weight = module.weight
                converted.bias = module.bias
            if module.track_running_stats:
                converted.running_mean = module.running_mean
                converted.running_var = module.running_var
                converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        replaced = convert_sync_batchnorm(child, process_group)
        if replaced is not child:
            setattr(module, name, replaced)
    return module
