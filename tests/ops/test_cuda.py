"""The project's SyncBatchNorm on a CUDA device against torch.nn.SyncBatchNorm, in one process
(``pytest -m cuda`` on a GPU; skipped with "needs CUDA" elsewhere)."""
import pytest
import torch
import torch.distributed as dist

import ops

pytestmark = pytest.mark.cuda


@pytest.fixture
def one_process_group(tmp_path):
    """A process group of one rank (NCCL where built): what both norms synchronise over."""
    backend = "nccl" if dist.is_nccl_available() else "gloo"
    dist.init_process_group(backend, init_method=f"file://{tmp_path}/rendezvous", rank=0,
                            world_size=1)
    yield
    dist.destroy_process_group()


def test_sync_batchnorm_equals_torch_sync_batchnorm(one_process_group, monkeypatch):
    """Its all-reduce path (forced: one rank would take plain batch norm) gives torch's outputs,
    input, weight and bias gradients and running statistics on CUDA tensors."""
    torch.manual_seed(0)
    device = torch.device("cuda")
    mine = ops.SyncBatchNorm(6).to(device)
    theirs = torch.nn.SyncBatchNorm(6).to(device)
    with torch.no_grad():
        for norm in (mine, theirs):
            norm.weight.copy_(torch.linspace(0.5, 1.5, 6))
            norm.bias.copy_(torch.linspace(-1, 1, 6))
    monkeypatch.setattr(ops.SyncBatchNorm, "_synchronised", lambda self: self.training)
    x = (torch.randn(4, 6, 5, 5, device=device) * 3 + 1).requires_grad_()
    results = []
    for norm in (mine, theirs):
        out = norm(x)
        grads = torch.autograd.grad((out * torch.arange(6.0, device=device).view(1, 6, 1, 1))
                                    .square().sum(), [x, norm.weight, norm.bias])
        results.append((out, grads, norm.running_mean, norm.running_var))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(results[0][2], results[1][2])
    torch.testing.assert_close(results[0][3], results[1][3])
