"""Latency- and memory-aware costs, budgets, and beta-DARTS' regulariser."""
import pytest
import torch

import ops
from nas.search import SearchConfig, network_complexity, run_search
from nas.search import latency as latency_module
from nas.search.costs import CostModel, none_genotype
from nas.search.latency import LatencyTable, op_memory_mb
from nas.train.settings import SettingError
from supernet import USupernet
from tests.synthetic import SquaresDataset


def _config(**overrides):
    values = dict(layout="1/0/1", epochs=4, channels=8, image_size=16, batch_size=2,
                  num_workers=0, progress=False, drop_path=0.0)
    return SearchConfig.from_preset("dsb2018", **{**values, **overrides})


def _data():
    return SquaresDataset(6, seed=1), SquaresDataset(4, seed=2)


def test_a_params_budget_below_the_unconstrained_result_is_met(tmp_path):
    free = run_search(_config(), *_data(), tmp_path / "free")
    unconstrained = free["history"][-1]["derived_params_M"]
    fixed = network_complexity(none_genotype(free["model"]), (1, 16, 16))["params"] / 1e6
    budget = fixed + 0.8 * (unconstrained - fixed)  # the macro's fixed part is not searched
    bounded = run_search(_config(budget_params=budget), *_data(), tmp_path / "bounded")
    derived = network_complexity(bounded["genotype"], (1, 16, 16))["params"] / 1e6
    assert derived <= budget < unconstrained, (derived, budget, unconstrained)


def test_a_budget_far_above_leaves_the_search_unchanged(tmp_path):
    free = run_search(_config(epochs=2), *_data(), tmp_path / "free")
    loose = run_search(_config(epochs=2, budget_params=100.0, budget_flops=100.0), *_data(),
                       tmp_path / "loose")
    assert loose["genotype"] == free["genotype"]
    a = free["model"].state_dict()
    b = loose["model"].state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)  # the hinge is exactly zero


def test_the_latency_table_is_measured_once_then_read_from_the_cache(tmp_path, monkeypatch):
    calls = []
    real = latency_module.measure_latency

    def counting(module, shape, **options):
        calls.append(tuple(shape))
        return real(module, shape, **options)

    monkeypatch.setattr(latency_module, "measure_latency", counting)
    first = LatencyTable("cpu", tmp_path, repeats=2, warmup=1)
    ms = first.op_ms("sep_conv_3x3", 8, 1, (16, 16))
    assert ms > 0 and first.measured == 1 and len(calls) == 1
    second = LatencyTable("cpu", tmp_path, repeats=2, warmup=1)  # a second search
    assert second.op_ms("sep_conv_3x3", 8, 1, (16, 16)) == ms
    assert second.measured == 0 and len(calls) == 1
    second.op_ms("sep_conv_3x3", 8, 1, (32, 32))  # another shape: another entry
    assert second.measured == 1 and len(calls) == 2
    # another device, torch version or thread count is another file, not a stale entry
    other = LatencyTable("cpu", tmp_path, repeats=3, warmup=1)
    assert other.path != first.path and other.op_ms("sep_conv_3x3", 8, 1, (16, 16)) > 0
    assert other.measured == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 97)
    assert LatencyTable("cpu", tmp_path, repeats=2, warmup=1).path != first.path


def test_expected_latency_and_memory_are_the_table_contraction_and_differentiable(tmp_path):
    net = USupernet(1, 1, channels=4, layout="1/0/1")
    table = LatencyTable("cpu", tmp_path, repeats=2, warmup=1)
    costs = CostModel(net, (16, 16), latency=table, memory=True)
    expected = costs.expected_costs(net)
    for kind in ("latency", "memory"):
        contraction = sum((net.architecture.weights(key).detach()
                           * costs.table(kind, key)).sum() for key in costs.keys)
        assert expected[kind].item() == pytest.approx(contraction.item(), rel=1e-6)
    assert costs.table("latency", "encoder")[0, ops.SEARCH_OPS.index("sep_conv_3x3")] == \
        pytest.approx(table.op_ms("sep_conv_3x3", 4, 1, (16, 16)))
    assert costs.table("memory", "encoder")[0, ops.SEARCH_OPS.index("skip_connect")] == 0.0
    assert op_memory_mb("sep_conv_3x3", 4, 1, (16, 16)) > 0
    grads = torch.autograd.grad(expected["latency"] + expected["memory"],
                                net.arch_parameters())
    assert all(g.abs().sum() > 0 for g in grads)


def test_latency_costs_need_a_latency_device():
    with pytest.raises(SettingError, match="--lambda-latency and --budget-latency need "
                                           "--latency-device"):
        _config(budget_latency=5.0)


def test_the_beta_regulariser_is_a_logsumexp_whose_gradient_restrains_the_strongest_op():
    net = USupernet(1, 1, channels=4, layout="1/0/1")
    with torch.no_grad():
        for alphas in net.arch_parameters():
            alphas.copy_(torch.randn_like(alphas))
    value = net.architecture.mean_logsumexp()
    expected = torch.cat([net.architecture.alphas[key].logsumexp(dim=-1)
                          for key in net.architecture.keys]).mean()
    assert value.item() == pytest.approx(expected.item())
    keys = net.architecture.keys
    grads = torch.autograd.grad(value, [net.architecture.alphas[key] for key in keys])
    edges = sum(net.architecture.alphas[key].shape[0] for key in keys)
    for grad, key in zip(grads, keys):
        torch.testing.assert_close(grad, net.architecture.weights(key).detach() / edges)
    # a descent step lowers each alpha in proportion to its weight: the gap between an
    # edge's strongest and weakest op narrows (beta-DARTS keeps any op from dominating)
    alphas = net.architecture.alphas[keys[0]].detach()
    stepped = alphas - 10.0 * grads[0]
    spread = (alphas.max(dim=1).values - alphas.min(dim=1).values)
    assert ((stepped.max(dim=1).values - stepped.min(dim=1).values) < spread).all()


def test_the_search_logs_margins_the_travel_rule_and_the_regulariser_ramp(tmp_path):
    result = run_search(_config(epochs=3, beta_regularization=5.0), *_data(), tmp_path)
    rows = result["history"]
    steps = 3 * 3  # 6 images / batch 2 = 3 steps per epoch, 3 epochs
    assert rows[0]["arch_lr"] == pytest.approx(2.6 / steps)  # raised from the seed's 6e-4
    for row in rows:
        assert 0 <= row["margin_min"] <= row["margin_median"] <= 1
        assert row["noise_margin"] >= 0.01
    genotype_file = (tmp_path / "genotype.json").read_text()
    assert '"margin_median"' in genotype_file and '"arch_lr_used"' in genotype_file
