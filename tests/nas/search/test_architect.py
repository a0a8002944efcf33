"""The bilevel step: first order, second order, and its Hessian-vector product."""
import torch

from nas.search.architect import Architect
from supernet import USupernet


def _setup(dtype=torch.float32, order=1, eps=0.01):
    torch.manual_seed(0)
    net = USupernet(2, 1, channels=4, layout="1/0/1").to(dtype)
    x = torch.randn(2, 2, 8, 8, dtype=dtype)
    y = (torch.rand(2, 1, 8, 8) > 0.5).to(dtype)
    batch = (x, y)

    def loss(model, data):
        return torch.nn.functional.binary_cross_entropy_with_logits(model(data[0]), data[1])

    architect = Architect(net, loss, loss, arch_lr=0.01, order=order,
                          finite_difference_eps=eps)
    return net, batch, architect, loss


def test_hessian_vector_product_agrees_with_autograd():
    # float64 and a small finite-difference step: the central difference then matches the
    # exact mixed second derivative to rounding (DARTS' default 0.01 is coarse on a tiny net)
    net, batch, architect, loss = _setup(torch.float64, eps=1e-4)
    weights, alphas = architect.weight_params, architect.arch_params
    generator = torch.Generator().manual_seed(1)
    vector = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in weights]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    approximate = architect.hessian_vector_product(vector, batch)
    # the finite difference left weights and buffers exactly as they were
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key
    net.load_state_dict(state)
    value = loss(net, batch)
    grads = torch.autograd.grad(value, weights, create_graph=True, allow_unused=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vector) if g is not None)
    exact = torch.autograd.grad(dot, alphas)
    for a, e in zip(approximate, exact):
        assert e.abs().max() > 0
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-7)


def test_first_order_step_moves_only_alphas():
    net, batch, architect, _ = _setup()
    weights = [p.detach().clone() for p in architect.weight_params]
    alphas = [p.detach().clone() for p in architect.arch_params]
    architect.step(batch, batch)
    assert all(torch.equal(a, b) for a, b in zip(weights, architect.weight_params))
    assert any(not torch.equal(a, b) for a, b in zip(alphas, architect.arch_params))
    assert all(p.grad is None for p in architect.weight_params)


def test_second_order_step_restores_weights_and_differs_from_first_order():
    net, batch, architect, loss = _setup(order=2)
    optimizer = torch.optim.SGD(architect.weight_params, lr=0.1, momentum=0.9,
                                weight_decay=3e-4)
    # one real weight step so the momentum buffers exist
    optimizer.zero_grad()
    loss(net, batch).backward()
    optimizer.step()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    architect.step(batch, batch, optimizer)
    second = [p.detach().clone() for p in architect.arch_params]
    for key, value in net.state_dict().items():
        if "alphas" not in key:
            assert torch.equal(value, state[key]), key
    net.load_state_dict(state)
    first_order = Architect(net, loss, loss, arch_lr=0.01, order=1)
    first_order.step(batch, batch)
    assert any(not torch.allclose(a, b) for a, b in zip(second, first_order.arch_params))


def test_architecture_step_runs_every_path_while_weight_steps_drop_them():
    torch.manual_seed(0)
    net = USupernet(2, 1, channels=4, layout="1/0/1", drop_path_rate=0.5)
    net.train()
    x, y = torch.randn(2, 2, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    gradients = []

    def loss(model, data):
        value = torch.nn.functional.binary_cross_entropy_with_logits(model(data[0]), data[1])
        gradients.append(torch.autograd.grad(value, model.arch_parameters(), retain_graph=True))
        return value

    for order in (1, 2):
        architect = Architect(net, loss, loss, arch_lr=0.0, order=order)
        gradients.clear()
        architect.step((x, y), (x, y), torch.optim.SGD(architect.weight_params, lr=0.0))
        architect.step((x, y), (x, y), torch.optim.SGD(architect.weight_params, lr=0.0))
        # lr 0: nothing moves, so without random path masks both steps see the same network
        half = len(gradients) // 2
        for first, second in zip(gradients[:half], gradients[half:]):
            assert all(torch.equal(a, b) for a, b in zip(first, second)), order
    # outside the step the supernet still drops paths at random (the weights' regulariser)
    assert not torch.equal(net(x), net(x))
