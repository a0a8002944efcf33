"""batch_norm_channels: a batch norm over a subset of its channels equals separate norms of
those channels (what the batched search cells' stacked norm needs once ops are pruned)."""
import pytest
import torch

import ops
from ops.sync_batchnorm import batch_norm_channels


def _norms(affine):
    torch.manual_seed(0)
    whole = torch.nn.BatchNorm2d(6, affine=affine)
    with torch.no_grad():
        whole.running_mean.normal_()
        whole.running_var.uniform_(0.5, 2)
        if affine:
            whole.weight.normal_()
            whole.bias.normal_()
    return whole


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_subset_equals_a_norm_of_those_channels(affine, training):
    whole = _norms(affine)
    index = torch.tensor([4, 5, 0, 1])  # two members' blocks, out of order
    alone = torch.nn.BatchNorm2d(4, affine=affine)
    alone.load_state_dict({k: (v[index] if v.dim() else v)
                           for k, v in whole.state_dict().items()})
    whole.train(training)
    alone.train(training)
    x = (torch.randn(3, 4, 5, 5) * 2 + 1).requires_grad_()
    before = whole.running_mean.clone()
    out = batch_norm_channels(whole, x, index)
    expected = alone(x)
    torch.testing.assert_close(out, expected)
    grads = [torch.autograd.grad(y.square().sum(), x)[0] for y in (out, expected)]
    torch.testing.assert_close(*grads)
    torch.testing.assert_close(whole.running_mean[index], alone.running_mean)
    torch.testing.assert_close(whole.running_var[index], alone.running_var)
    untouched = torch.tensor([2, 3])
    torch.testing.assert_close(whole.running_mean[untouched], before[untouched])
    if training:
        assert not torch.equal(whole.running_mean[index], before[index])


def test_a_norm_without_its_batch_count():
    whole = _norms(False)
    whole.num_batches_tracked = None  # the batched cells' norms keep no count
    batch_norm_channels(whole, torch.randn(2, 2, 3, 3), torch.tensor([1, 2]))
    ops.SyncBatchNorm(2, affine=False).train()(torch.randn(2, 2, 3, 3))  # unsynchronised path


def _subset_rank(rank, tmp_path, x):
    norm = ops.convert_sync_batchnorm(torch.nn.BatchNorm2d(6, affine=False))
    norm.num_batches_tracked = None
    index = torch.tensor([3, 4, 5])
    part = x[rank * 2:(rank + 1) * 2].clone().requires_grad_()
    out = batch_norm_channels(norm, part, index)
    out.square().sum().backward()
    torch.save({"out": out.detach(), "grad": part.grad, "mean": norm.running_mean,
                "var": norm.running_var}, tmp_path / f"{rank}.pt")


@pytest.mark.slow
def test_synchronised_subset_equals_one_norm_of_the_combined_batch(tmp_path):
    from tests.nas.train.test_distributed import WORLD, _spawn

    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(1)) * 3 + 1
    _spawn(_subset_rank, tmp_path, x)
    reference = torch.nn.BatchNorm2d(3, affine=False)
    full = x.clone().requires_grad_()
    out = reference(full)
    out.square().sum().backward()
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        rows = slice(rank * 2, (rank + 1) * 2)
        torch.testing.assert_close(result["out"], out[rows].detach())
        torch.testing.assert_close(result["grad"], full.grad[rows])
        torch.testing.assert_close(result["mean"][3:], reference.running_mean)
        torch.testing.assert_close(result["var"][3:], reference.running_var)
        torch.testing.assert_close(result["mean"][:3], torch.zeros(3))  # never run
