"""Checkpointed cells (USupernet(checkpoint_cells=True)): the same function, gradients, running
statistics and drop-path masks, for a fraction of the memory autograd keeps."""
import pytest
import torch

from supernet import USupernet


def _pair(kind, **options):
    torch.manual_seed(0)
    options = {"channels": 8, "layout": "1/1/1", "drop_path_rate": 0.3, kind: True, **options}
    plain = USupernet(3, 1, **options).double()
    checkpointed = USupernet(3, 1, checkpoint_cells=True, **options).double()
    checkpointed.load_state_dict(plain.state_dict())
    return plain, checkpointed


@pytest.mark.parametrize("kind", ["fused", "batched"])
def test_checkpointed_cells_give_the_same_step(kind):
    """Outputs and every gradient, and the state after the step: the recomputed forward counts
    its batch in no running statistic and draws the same drop-path masks (rate 0.3 here)."""
    plain, checkpointed = _pair(kind)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    grads = []
    for net in (plain, checkpointed):
        torch.manual_seed(5)  # the same masks in both
        out = net(x)
        grads.append((out, torch.autograd.grad(out.square().sum(), list(net.parameters()))))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b)
    for (name, mine), theirs in zip(checkpointed.state_dict().items(),
                                    plain.state_dict().values()):
        torch.testing.assert_close(mine, theirs, msg=name)  # running means, variances, counts


def _kept_bytes(net, x):
    """Bytes of what one training forward keeps for backward: the tensors autograd saves and
    the inputs of every cell (what a checkpointed cell keeps instead), each storage once."""
    storages = {}

    def keep(tensor):
        if isinstance(tensor, torch.Tensor):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    def keep_inputs(cell, args):
        for argument in args:
            keep(argument)

    hooks = [cell.register_forward_pre_hook(keep_inputs) for cell in net.cells]
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        net(x)
    for hook in hooks:
        hook.remove()
    return sum(storages.values())


def test_checkpointed_cells_keep_a_fraction_of_the_activations():
    """A count of bytes, not a timing (the peak memory of a whole step is bench.search_step's)."""
    plain, checkpointed = _pair("batched", layout="2/1/2")
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    kept = [_kept_bytes(net, x) for net in (plain, checkpointed)]
    assert kept[1] < 0.1 * kept[0], kept


def test_evaluation_and_no_grad_run_the_cells_once():
    plain, checkpointed = _pair("batched")
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    outputs = []
    for net in (checkpointed, plain):
        torch.manual_seed(5)  # the same drop-path masks
        with torch.no_grad():
            outputs.append(net(x))
    torch.testing.assert_close(*outputs)
    checkpointed.eval()
    plain.eval()
    torch.testing.assert_close(checkpointed(x), plain(x))
