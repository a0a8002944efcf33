"""``resample_to``, the resampling between the cell inputs of different levels: its pooling
kernel is a Python int (so traced exports hold a constant kernel, which ONNX requires) and its
math is unchanged: max-pooling by the exact factor, adaptive max-pooling otherwise, nearest
upsampling."""
import pytest
import torch
import torch.nn.functional as F

from supernet import resample_to


@pytest.mark.parametrize("shape, size", [((2, 3, 16, 16), (8, 8)), ((1, 2, 12, 20), (3, 5)),
                                         ((1, 2, 4, 8, 8), (2, 4, 4))])
def test_an_exact_factor_is_plain_max_pooling(shape, size):
    x = torch.randn(shape)
    factors = [c // s for c, s in zip(shape[2:], size)]
    pool = F.max_pool2d if len(size) == 2 else F.max_pool3d
    assert torch.equal(resample_to(x, size), pool(x, factors))


def test_other_sizes_pool_adaptively_or_upsample():
    x = torch.randn(1, 2, 15, 15)
    assert torch.equal(resample_to(x, (7, 7)), F.adaptive_max_pool2d(x, (7, 7)))
    assert torch.equal(resample_to(x, (30, 30)), F.interpolate(x, size=(30, 30), mode="nearest"))
    assert resample_to(x, (15, 15)) is x


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning:torch.jit.*")
def test_a_traced_resampling_holds_a_constant_kernel_and_the_ratio_at_other_sizes():
    traced = torch.jit.trace(lambda a, b: resample_to(a, b.shape[2:]), (torch.randn(1, 1, 16, 16),
                                                                       torch.randn(1, 1, 8, 8)))
    x = torch.randn(2, 1, 24, 24)
    assert torch.equal(traced(x, torch.randn(2, 1, 12, 12)), F.max_pool2d(x, 2))
