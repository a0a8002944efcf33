"""What differs on a CUDA device for the fixed networks (``pytest -m cuda`` on a GPU; skipped
with "needs CUDA" elsewhere): bf16 autocast through every network, channels-last."""
import pytest
import torch

import models
from supernet import from_genotype

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")


def _network(name, make_genotype):
    """(network, input shape) at a small size: every registered 3D network, the 2D U-Net
    baseline and a searched (genotype) network."""
    if name == "genotype":
        return from_genotype(make_genotype(in_channels=3)), (2, 3, 32, 32)
    if name == "unet2d":
        return models.plain_unet(3, 1), (2, 3, 32, 32)
    kwargs = {"input_size": (32,) * 3} if name == "vae_unet" else {}
    return models.build(name, **kwargs), (2, 4, 32, 32, 32)


NAMES = [*models.list_models(), "unet2d", "genotype"]


@pytest.mark.parametrize("name", NAMES)
def test_bf16_forward_and_backward_are_finite(name, make_genotype):
    torch.manual_seed(0)
    network, shape = _network(name, make_genotype)
    network = network.to(CUDA).train()
    x = torch.randn(shape, device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        output = network(x)
    parts = list(output) if isinstance(output, tuple) else [output]
    loss = sum(part.float().square().mean() for part in parts)
    loss.backward()
    assert all(torch.isfinite(part.float()).all() for part in parts)
    for parameter_name, parameter in network.named_parameters():
        if parameter.grad is not None:
            assert torch.isfinite(parameter.grad).all(), parameter_name


@pytest.mark.parametrize("name", ["mfsnet", "unet3d", "genotype"])
def test_channels_last_equals_eager(name, make_genotype):
    torch.manual_seed(0)
    network, shape = _network(name, make_genotype)
    network = network.to(CUDA).eval()
    x = torch.randn(shape, device=CUDA)
    with torch.no_grad():
        expected = network(x)
        layout = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
        out = network.to(memory_format=layout)(x.contiguous(memory_format=layout))
    torch.testing.assert_close(out, expected, rtol=1e-3, atol=1e-4)
