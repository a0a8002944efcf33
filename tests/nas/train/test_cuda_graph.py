"""GraphedStep: a whole training step as one CUDA graph on CUDA, a plain call elsewhere."""
import pytest
import torch

from nas.train.cuda_graph import GraphedStep


def _model_and_step(device):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, capturable=device.type == "cuda")

    def step(image, target):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(image), target)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return model, step


def _batches(device, count=6):
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(2, 3, 8, 8, generator=generator).to(device),
             torch.randn(2, 1, 8, 8, generator=generator).to(device)) for _ in range(count)]


def test_without_cuda_it_is_the_step_itself():
    model, step = _model_and_step(torch.device("cpu"))
    reference, reference_step = _model_and_step(torch.device("cpu"))
    runner = GraphedStep(step, warmup=2)
    for image, target in _batches(torch.device("cpu")):
        torch.testing.assert_close(runner(image, target), reference_step(image, target))
    assert not runner.graphed and runner.captures == 0 and runner.calls == 6
    for mine, theirs in zip(model.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(mine, theirs)


def test_a_graph_needs_a_warm_up():
    with pytest.raises(ValueError, match="warm-up"):
        GraphedStep(lambda x: x, warmup=0)


@pytest.mark.cuda
def test_replayed_steps_equal_eager_steps_on_cuda():
    """Warm-up, capture, replays: the same losses and weights as eager steps on new batches
    each time (the inputs are copied into the captured ones), and a new key captures again."""
    device = torch.device("cuda")
    model, step = _model_and_step(device)
    reference, reference_step = _model_and_step(device)
    runner = GraphedStep(step, warmup=2)
    for index, (image, target) in enumerate(_batches(device)):
        key = "second" if index >= 4 else "first"
        loss = runner(image, target, key=key).clone()
        torch.testing.assert_close(loss, reference_step(image, target), rtol=1e-4, atol=1e-5)
    assert runner.graphed and runner.captures == 2
    for mine, theirs in zip(model.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
