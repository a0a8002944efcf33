"""Derivation: top-2 edges by strongest non-none op, collapse guards."""
import pytest
import torch

import ops
from nas.search.derive import derive_cell, derive_genotype, parameter_free_share, skip_connect_count
from supernet import USupernet

P = ops.SEARCH_OPS
INDEX = {name: i for i, name in enumerate(P)}


def _weights(choices):
    """14 x 8 weights: uniform 0.05, plus the listed (edge, op, weight) entries."""
    w = torch.full((14, 8), 0.05)
    for edge, op, value in choices:
        w[edge, INDEX[op]] = value
    return w


def test_top_two_edges_by_strongest_non_none_op():
    weights = _weights([
        (0, "none", 0.9),  # 'none' never counts
        (0, "sk", 0.3), (1, "ghost", 0.4),  # node 0: both inputs
        (2, "sep_conv_3x3", 0.2), (3, "skip_connect", 0.5), (4, "dil_conv_3x3", 0.6),  # node 1
        (5, "sk", 0.7), (8, "max_pool_3x3", 0.65),  # node 2: edges 5..8 read inputs 0..3
        (10, "ghost", 0.5), (13, "shuffle_conv_3x3", 0.55),  # node 3: edges 9..13
    ])
    cell = derive_cell(weights, P, 4)
    assert cell == (
        (("sk", 0), ("ghost", 1)),
        (("skip_connect", 1), ("dil_conv_3x3", 2)),
        (("sk", 0), ("max_pool_3x3", 3)),
        (("ghost", 1), ("shuffle_conv_3x3", 4)),
    )


def test_edge_normalisation_weights_the_edge_choice():
    weights = _weights([(0, "sk", 0.3), (1, "ghost", 0.4), (2, "sk", 0.35)])
    edge_weights = torch.ones(14)
    edge_weights[1] = 0.1  # node 0 keeps its two edges regardless; node 1 has three
    edge_weights[3] = 0.1
    cell = derive_cell(weights, P, 4, edge_weights=edge_weights)
    node1_inputs = [index for _, index in cell[1]]
    assert 1 not in node1_inputs and node1_inputs == [0, 2]


def test_parameter_free_cap_replaces_the_weakest_free_choices():
    weights = _weights([
        (0, "skip_connect", 0.9), (1, "skip_connect", 0.8),
        (2, "max_pool_3x3", 0.7), (3, "skip_connect", 0.6), (3, "sk", 0.3),
        (0, "ghost", 0.2),
    ])
    uncapped = derive_cell(weights, P, 4)
    capped = derive_cell(weights, P, 4, max_parameter_free=1)
    free = lambda cell: sum(op in ops.PARAMETER_FREE_OPS for node in cell for op, _ in node)  # noqa
    assert free(uncapped) > 1 and free(capped) <= 1
    # the strongest free op stays; the others become their edge's best op with parameters
    # (ties go to the lowest index: dil_conv_3x3), e.g. edge 3's sk
    assert capped[0] == (("skip_connect", 0), ("dil_conv_3x3", 1))
    assert capped[1] == (("dil_conv_3x3", 0), ("sk", 1))


def test_derive_genotype_of_a_supernet_and_statistics():
    torch.manual_seed(0)
    net = USupernet(3, 1, channels=8, layout="1/1/1")
    with torch.no_grad():
        net.architecture.alphas["middle"][:, INDEX["skip_connect"]] = 5.0
    genotype = derive_genotype(net)
    assert genotype.cell_types == ("encoder", "middle", "decoder")
    assert all(op == "skip_connect" for node in genotype.cells["middle"] for op, _ in node)
    assert skip_connect_count(genotype)["middle"] == 8
    assert 8 / 24 <= parameter_free_share(genotype) <= 1
    assert parameter_free_share(derive_genotype(net, max_parameter_free=2)) <= 6 / 24


@pytest.mark.parametrize("arch_lr, steps", [(0.072, 36), (0.144, 18), (0.024, 108)])
def test_the_noise_margin_is_what_random_sign_gradients_rarely_reach(arch_lr, steps):
    """Alphas stepped by the architect's Adam on random gradients (no signal at all): the median
    decision margin of their 14 edges stays below noise_margin in about 95 runs of 100 (so a
    search above it is unlikely to be noise), and is not far below it (a threshold well above
    what noise reaches would discard real decisions)."""
    import math

    from nas.search.derive import noise_margin

    generator = torch.Generator().manual_seed(0)
    medians = []
    for _ in range(100):
        alphas = (1e-3 * torch.randn(14, 8, generator=generator)).requires_grad_()
        optimizer = torch.optim.Adam([alphas], lr=arch_lr, betas=(0.5, 0.999), weight_decay=1e-3)
        for _ in range(steps):
            alphas.grad = torch.randn(14, 8, generator=generator)
            optimizer.step()
        weights = torch.softmax(alphas.detach(), -1)[:, 1:]  # "none" (op 0) is never derived
        top = weights.topk(2, -1).values
        medians.append(float((top[:, 0] - top[:, 1]).median()))
    threshold = noise_margin(arch_lr, steps, 8)
    below = sum(median < threshold for median in medians) / len(medians)
    assert 0.85 <= below < 1.0, (below, threshold)
    assert threshold == pytest.approx(arch_lr * math.sqrt(steps) / 8)
