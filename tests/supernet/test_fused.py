"""Fused search cells compute exactly what the per-edge mixed ops compute."""
import pytest
import torch

import ops
from supernet import USupernet, edge_inputs, edges_from, edges_into
from supernet.cells import SearchCell
from supernet.fused import FusedSearchCell


def _pair(dims=2, partial_channels=1, primitives=ops.SEARCH_OPS):
    torch.manual_seed(0)
    cell = SearchCell(8, 12, 8, dims, primitives, partial_channels=partial_channels).double()
    # non-trivial running statistics, so evaluation mode compares them too
    cell.train()
    cell(torch.randn(3, 8, *(6,) * dims).double(), torch.randn(3, 12, *(6,) * dims).double(),
         torch.softmax(torch.randn(14, len(primitives)), -1).double())
    fused = FusedSearchCell(8, 12, 8, dims, primitives, partial_channels=partial_channels)
    return cell, fused.double().load_from(cell)


def test_source_edges_cover_every_edge_once():
    edges = [e for source in edges_from(4) for e, _ in source]
    assert sorted(edges) == list(range(14))
    assert [len(s) for s in edges_from(4)] == [4, 4, 3, 2, 1, 0]
    # the three views of one rule agree: node i reads states 0 .. i + 1, in edge order
    assert edge_inputs(4)[:5] == ((0, 0), (0, 1), (1, 0), (1, 1), (1, 2))
    assert [[e for e, _ in node] for node in edges_into(4)] == [[0, 1], [2, 3, 4], [5, 6, 7, 8],
                                                                 [9, 10, 11, 12, 13]]
    for source, outgoing in enumerate(edges_from(4)):
        assert all(edge_inputs(4)[edge] == (node, source) for edge, node in outgoing)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("partial_channels", [1, 2])
@pytest.mark.parametrize("training", [True, False])
def test_fused_cell_matches_outputs_and_gradients(dims, partial_channels, training):
    cell, fused = _pair(dims, partial_channels)
    cell.train(training)
    fused.train(training)
    s0 = torch.randn(2, 8, *(5,) * dims, dtype=torch.float64, requires_grad=True)
    s1 = torch.randn(2, 12, *(5,) * dims, dtype=torch.float64, requires_grad=True)
    weights = torch.softmax(torch.randn(14, 8, dtype=torch.float64), -1).requires_grad_()
    edge_weights = torch.rand(14, dtype=torch.float64, requires_grad=True)
    results = []
    for module in (cell, fused):
        out = module(s0, s1, weights, edge_weights)
        grads = torch.autograd.grad(out.square().sum(), [s0, s1, weights, edge_weights])
        results.append((out, grads))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)


def test_fused_cell_with_pruned_ops():
    cell, fused = _pair()
    weights = torch.softmax(torch.randn(14, 8, dtype=torch.float64), -1)
    active = [tuple(i for i in range(1, 8) if (edge + i) % 3) for edge in range(14)]
    for edge, kept in enumerate(active):
        weights[edge, [i for i in range(8) if i not in kept]] = 0.0
    s0, s1 = torch.randn(2, 8, 6, 6).double(), torch.randn(2, 12, 6, 6).double()
    torch.testing.assert_close(cell(s0, s1, weights, active=active),
                               fused(s0, s1, weights, active=active))


def test_fused_supernet_matches_the_unfused_one():
    torch.manual_seed(0)
    plain = USupernet(3, 1, channels=8, layout="1/1/1").double()
    fused = USupernet(3, 1, channels=8, layout="1/1/1", fused=True).double().load_from(plain)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    out_plain, out_fused = plain(x), fused(x)
    torch.testing.assert_close(out_plain, out_fused)
    grads = [torch.autograd.grad(out.sum(), net.arch_parameters())
             for out, net in ((out_plain, plain), (out_fused, fused))]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    # every alpha of every edge and op (none included, through the softmax) gets a gradient
    assert all((grad != 0).all() for grad in grads[1])


@pytest.mark.parametrize("partial_channels, pruned", [(1, False), (2, True)])
def test_fused_3d_supernet_matches_the_unfused_one(partial_channels, pruned):
    """The 3D search's supernet (4 modalities, 3 sigmoid regions, 2 levels): the fused cells give
    the per-edge function, its input, weight and alpha gradients, with partial channels and
    progressively shrunk (pruned) ops as well (float64)."""
    torch.manual_seed(0)
    options = dict(channels=4, layout="2/0/2", spatial_dims=3, partial_channels=partial_channels,
                   output_activation="sigmoid")
    plain = USupernet(4, 3, **options).double()
    fused = USupernet(4, 3, fused=True, **options).double().load_from(plain)
    if pruned:  # progressive shrinking's state: some ops gone from some edges
        for net in (plain, fused):
            for edge in range(0, 14, 3):
                net.architecture.prune("encoder", edge, 4)
                net.architecture.prune("decoder", edge, 6)
    x = torch.randn(2, 4, 8, 8, 8, dtype=torch.float64, requires_grad=True)
    outputs = [net(x) for net in (plain, fused)]
    torch.testing.assert_close(outputs[0], outputs[1])
    assert outputs[0].shape == (2, 3, 8, 8, 8) and fused.output_activation == "sigmoid"
    grads = []
    for out, net in zip(outputs, (plain, fused)):
        weights = [p for n, p in net.named_parameters() if not n.startswith("cells.")]
        grads.append(torch.autograd.grad(out.square().sum(), [x, *net.arch_parameters(), *weights]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_fused_rejects_primitives_it_cannot_fuse():
    with pytest.raises(ValueError, match="fused cells support"):
        USupernet(3, 1, channels=8, layout="1/0/1", primitives=("none", "conv_3x3"), fused=True)
