"""What differs on a CUDA device for the search supernets (``pytest -m cuda`` on a GPU; skipped
with "needs CUDA" elsewhere): cuDNN's kernels for the fused and batched cells, bf16 autocast,
channels-last and torch.compile (a search step as a CUDA graph: tests/nas/search/test_cuda.py)."""
import pytest
import torch

from supernet import USupernet

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")


def _twins(kind, dtype=torch.float64, **options):
    """A per-edge supernet and a ``kind`` ("fused" / "batched") one with the same weights."""
    torch.manual_seed(0)
    options = {"channels": 8, "layout": "1/1/1", **options}
    plain = USupernet(3, 1, **options)
    other = USupernet(3, 1, **{kind: True}, **options).load_from(plain)
    return plain.to(CUDA, dtype), other.to(CUDA, dtype)


@pytest.mark.parametrize("kind", ["fused", "batched"])
@pytest.mark.parametrize("partial_channels", [1, 4])
def test_fused_and_batched_equal_per_edge_on_cuda(kind, partial_channels):
    """Float64 on the GPU's own kernels: output, input and alpha gradients."""
    plain, other = _twins(kind, partial_channels=partial_channels,
                          edge_normalization=partial_channels > 1)
    x = torch.randn(2, 3, 16, 16, device=CUDA, dtype=torch.float64, requires_grad=True)
    results = []
    for net in (plain, other):
        out = net(x)
        results.append((out, torch.autograd.grad(out.square().sum(),
                                                 [x, *net.arch_parameters()])))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", [None, "fused", "batched"])
def test_bf16_forward_and_backward_are_finite(kind):
    torch.manual_seed(0)
    net = USupernet(3, 1, channels=8, layout="2/1/2", **({kind: True} if kind else {})).to(CUDA)
    x = torch.randn(2, 3, 32, 32, device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = net(x)
    assert out.dtype == torch.bfloat16
    out.float().square().mean().backward()
    assert torch.isfinite(out.float()).all()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


@pytest.mark.parametrize("kind", ["fused", "batched"])
def test_channels_last_equals_eager(kind):
    _, net = _twins(kind, dtype=torch.float32)
    x = torch.randn(2, 3, 16, 16, device=CUDA)
    expected = net(x)
    last = net.to(memory_format=torch.channels_last)
    torch.testing.assert_close(last(x.contiguous(memory_format=torch.channels_last)), expected,
                               rtol=1e-4, atol=1e-4)


def test_compiled_batched_supernet_equals_eager():
    torch.manual_seed(0)
    net = USupernet(3, 1, channels=8, layout="1/0/1", nodes=2, batched=True).to(CUDA)
    x = torch.randn(2, 3, 16, 16, device=CUDA)
    eager = net(x)
    eager_grads = torch.autograd.grad(eager.square().sum(), net.arch_parameters())
    compiled = torch.compile(net)
    out = compiled(x)
    grads = torch.autograd.grad(out.square().sum(), net.arch_parameters())
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-4)
    for a, b in zip(grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
