"""Batched search cells compute exactly what the per-edge mixed ops compute (float64), with
fewer kernels than the fused cells."""
import pytest
import torch

import ops
from bench.dispatch import count_ops
from supernet import USupernet
from supernet.batched import BatchedSearchCell
from supernet.cells import SearchCell


def _pair(dims=2, partial_channels=1, primitives=ops.SEARCH_OPS):
    torch.manual_seed(0)
    cell = SearchCell(8, 12, 8, dims, primitives, partial_channels=partial_channels).double()
    # non-trivial running statistics, so evaluation mode compares them too
    cell.train()
    cell(torch.randn(3, 8, *(6,) * dims).double(), torch.randn(3, 12, *(6,) * dims).double(),
         torch.softmax(torch.randn(14, len(primitives)), -1).double())
    batched = BatchedSearchCell(8, 12, 8, dims, primitives, partial_channels=partial_channels)
    return cell, batched.double().load_from(cell)


def _compare(cell, batched, dims, primitives=ops.SEARCH_OPS, edge_weights=True, active=None):
    s0 = torch.randn(2, 8, *(5,) * dims, dtype=torch.float64, requires_grad=True)
    s1 = torch.randn(2, 12, *(5,) * dims, dtype=torch.float64, requires_grad=True)
    weights = torch.softmax(torch.randn(14, len(primitives), dtype=torch.float64), -1)
    if active is not None:  # pruned ops weigh exactly 0
        for edge, kept in enumerate(active):
            weights[edge, [i for i in range(len(primitives)) if i not in kept]] = 0.0
    weights.requires_grad_()
    beta = torch.rand(14, dtype=torch.float64, requires_grad=True) if edge_weights else None
    inputs = [t for t in (s0, s1, weights, beta) if t is not None]
    results = []
    for module in (cell, batched):
        out = module(s0, s1, weights, beta, active)
        results.append((out, torch.autograd.grad(out.square().sum(), inputs)))
    torch.testing.assert_close(results[0][0], results[1][0])
    if active is not None:
        # a group runs an op for all its edges when any edge keeps it, so d/d weight of a
        # pruned (edge, op) is not zero there; it never reaches the alphas (their masked
        # softmax has zero derivative there: test_batched_supernet_matches_the_per_edge_one)
        kept = torch.zeros(14, len(primitives), dtype=torch.bool)
        for edge, ops_kept in enumerate(active):
            kept[edge, list(ops_kept)] = True
        for result in results:
            result[1][2].masked_fill_(~kept, 0.0)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("partial_channels", [1, 2, 4])
@pytest.mark.parametrize("training", [True, False])
def test_batched_cell_matches_outputs_and_gradients(dims, partial_channels, training):
    """Inputs, alphas and edge weights (PC-DARTS' betas, folded into the op weights here)."""
    cell, batched = _pair(dims, partial_channels)
    cell.train(training)
    batched.train(training)
    _compare(cell, batched, dims)


def test_batched_cell_matches_darts_ops():
    """DARTS' space: two sep and two dil ops (kernel 5 too) and both pools."""
    cell, batched = _pair(primitives=ops.DARTS_OPS)
    _compare(cell, batched, 2, ops.DARTS_OPS, edge_weights=False)


def test_batched_cell_with_pruned_ops():
    """Progressive shrinking: ops pruned on some edges, and on every edge of a group (then the
    stacked last norm runs without them and leaves their statistics alone)."""
    cell, batched = _pair()
    active = [tuple(i for i in range(1, 8) if (edge + i) % 3) for edge in range(14)]
    input_edges = batched.group_edges[0]  # the group of the cell's two inputs
    active = [tuple(i for i in kept if not (edge in input_edges and i == 4))  # sep_conv_3x3
              for edge, kept in enumerate(active)]
    assert all(4 not in active[e] for e in input_edges)
    group = batched.groups[0]
    sep = group.normed.index("sep_conv_3x3") * group.edges * group.op_channels
    before = group.final_norm.norm.running_mean.clone()
    _compare(cell, batched, 2, active=active)
    after = group.final_norm.norm.running_mean
    width = group.edges * group.op_channels
    torch.testing.assert_close(after[sep:sep + width], before[sep:sep + width])  # not run
    assert not torch.equal(after, before)  # the others were
    # and on the edges that keep an op, its statistics are the per-edge op's
    dil = group.normed.index("dil_conv_3x3") * width
    dil_index = ops.SEARCH_OPS.index("dil_conv_3x3")
    channels = group.op_channels
    checked = 0
    for position, edge in enumerate(input_edges):
        if dil_index in active[edge]:
            start = dil + position * channels
            torch.testing.assert_close(after[start:start + channels],
                                       cell.edges[edge].ops[dil_index][3].running_mean)
            checked += 1
    assert checked >= 2


def test_batched_cell_with_every_op_pruned_on_a_group():
    cell, batched = _pair()
    active = [() if edge in batched.group_edges[2] else tuple(range(1, 8)) for edge in range(14)]
    _compare(cell, batched, 2, edge_weights=False, active=active)


@pytest.mark.parametrize("dims, layout, partial_channels, pruned",
                         [(2, "1/1/1", 1, False), (2, "1/0/1", 1, True), (3, "2/0/2", 2, True)])
def test_batched_supernet_matches_the_per_edge_one(dims, layout, partial_channels, pruned):
    """The whole supernet: output, and the gradients of input, alphas, betas and the weights
    outside the cells (float64), with progressively shrunk (pruned) ops too."""
    torch.manual_seed(0)
    options = dict(channels=4 * partial_channels, layout=layout, spatial_dims=dims,
                   partial_channels=partial_channels, edge_normalization=partial_channels > 1)
    plain = USupernet(3, 1, **options).double()
    batched = USupernet(3, 1, batched=True, **options).double().load_from(plain)
    if pruned:  # progressive shrinking's state: some ops gone from some edges
        for net in (plain, batched):
            for edge in range(0, 14, 3):
                net.architecture.prune("encoder", edge, 4)
                net.architecture.prune("decoder", edge, 6)
    x = torch.randn(2, 3, *(8,) * dims, dtype=torch.float64, requires_grad=True)
    outputs = [net(x) for net in (plain, batched)]
    torch.testing.assert_close(outputs[0], outputs[1])
    grads = []
    for out, net in zip(outputs, (plain, batched)):
        weights = [p for n, p in net.named_parameters() if not n.startswith("cells.")]
        grads.append(torch.autograd.grad(out.square().sum(),
                                         [x, *net.arch_parameters(), *weights]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    assert all((grad != 0).any() for grad in grads[1][1:len(batched.arch_parameters()) + 1])


def test_batched_supernet_keeps_its_weights_through_a_state_dict():
    """Resuming a search: the batched layout saves and loads (its norms keep no batch count)."""
    torch.manual_seed(0)
    net = USupernet(3, 1, channels=4, layout="1/0/1", batched=True)
    net(torch.randn(2, 3, 8, 8))  # running statistics move
    other = USupernet(3, 1, channels=4, layout="1/0/1", batched=True)
    other.load_state_dict(net.state_dict())  # strict
    net.eval()
    other.eval()
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(net(x), other(x))
    assert not any(k.startswith("cells.") and k.endswith("num_batches_tracked")
                   for k in net.state_dict())


def test_batched_step_dispatches_fewer_kernels_than_fused():
    """The point of the batched cells: fewer kernels per forward + backward (what a GPU's
    launch-bound step time follows), for the same function."""
    counts = {}
    x = torch.randn(2, 3, 8, 8)
    for kind in ("fused", "batched"):
        torch.manual_seed(0)
        net = USupernet(3, 1, channels=8, layout="1/0/1", **{kind: True})
        counts[kind] = count_ops(lambda net=net: net(x).sum().backward()).kernels
    # a count of dispatched ops, not a timing: the same on every machine (0.55 here; the
    # whole search step's counts are in BENCHMARKS.md)
    assert counts["batched"] < 0.75 * counts["fused"], counts


def test_batched_rejects_what_it_cannot_batch():
    with pytest.raises(ValueError, match="batched cells support"):
        USupernet(3, 1, channels=8, layout="1/0/1", primitives=("none", "conv_3x3"),
                  batched=True)
    with pytest.raises(ValueError, match="batch norm"):
        BatchedSearchCell(8, 8, 8, 2, norm="instance")


@pytest.mark.parametrize("kind", ["fused", "batched"])
def test_a_supernet_exports_its_weights_to_a_per_edge_one(kind):
    """``export_to``, the inverse of ``load_from``: the per-edge supernet then computes the
    same function (float64), and loading it back gives the same weights."""
    torch.manual_seed(0)
    options = dict(channels=8, layout="1/1/1", partial_channels=2, edge_normalization=True)
    fast = USupernet(3, 1, **{kind: True}, **options).double()
    per_edge = fast.export_to(USupernet(3, 1, **options).double())
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(per_edge(x), fast(x))
    again = USupernet(3, 1, **{kind: True}, **options).double().load_from(per_edge)
    for (name, mine), theirs in zip(again.named_parameters(), fast.parameters()):
        assert torch.equal(mine, theirs), name
