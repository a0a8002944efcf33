"""A whole search step of the supernet replayed as a CUDA graph (``pytest -m cuda`` on a GPU;
skipped with "needs CUDA" elsewhere)."""
import pytest
import torch

from nas.train.cuda_graph import GraphedStep
from supernet import USupernet

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")


def _search_step(net):
    """The search step of bench.search_step: an architecture update (Adam on the alphas) and a
    weight update (SGD), graph-safe (capturable Adam, no host synchronisation)."""
    arch = net.arch_parameters()
    weights = net.weight_parameters()
    arch_optimizer = torch.optim.Adam(arch, lr=1e-2, capturable=True)
    weight_optimizer = torch.optim.SGD(weights, lr=1e-2, momentum=0.9)

    def step(train_image, train_target, val_image, val_target):
        arch_optimizer.zero_grad(set_to_none=True)
        value = torch.nn.functional.binary_cross_entropy_with_logits(net(val_image), val_target)
        for param, grad in zip(arch, torch.autograd.grad(value, arch)):
            param.grad = grad
        arch_optimizer.step()
        weight_optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(train_image),
                                                                     train_target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        weight_optimizer.step()
        return value.detach(), loss.detach()

    return step


@pytest.mark.parametrize("checkpoint_cells", [False, True])
def test_a_search_step_replayed_as_a_cuda_graph_equals_eager_steps(checkpoint_cells):
    """The whole step (both updates) captured once and replayed on new batches: the same
    losses, alphas and weights as eager steps (checkpointed cells recompute inside the graph)."""
    torch.manual_seed(0)
    options = dict(channels=8, layout="1/0/1", batched=True, checkpoint_cells=checkpoint_cells)
    graphed_net = USupernet(3, 1, **options).to(CUDA)
    eager_net = USupernet(3, 1, **options).to(CUDA)
    eager_net.load_state_dict(graphed_net.state_dict())
    runner = GraphedStep(_search_step(graphed_net), warmup=2)
    eager = _search_step(eager_net)
    generator = torch.Generator(device=CUDA).manual_seed(1)
    for _ in range(5):
        batch = [torch.randn(2, 3, 16, 16, device=CUDA, generator=generator),
                 (torch.rand(2, 1, 16, 16, device=CUDA, generator=generator) > 0.5).float(),
                 torch.randn(2, 3, 16, 16, device=CUDA, generator=generator),
                 (torch.rand(2, 1, 16, 16, device=CUDA, generator=generator) > 0.5).float()]
        losses = [t.clone() for t in runner(*batch)]
        for mine, theirs in zip(losses, eager(*batch)):
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
    assert runner.graphed and runner.captures == 1
    for (name, mine), theirs in zip(graphed_net.state_dict().items(),
                                    eager_net.state_dict().values()):
        torch.testing.assert_close(mine, theirs, rtol=1e-3, atol=1e-5, msg=name)
