"""The cost-matched random baseline: valid, cost-matched, deterministic per seed, and a clear
error when nothing matches."""
import dataclasses
import random

import pytest

import ops
from nas.search import genotype_from_dict, genotype_to_dict, load_genotype_file, network_complexity
from nas.search.random_genotype import NoCostMatchError, cost_matched_genotype, random_genotype
from supernet import from_genotype


@pytest.fixture
def reference(make_genotype):
    return make_genotype((2, 1, 2), channels=8, in_channels=3)


def test_random_genotypes_are_valid_members_of_the_space(reference):
    rng = random.Random(0)
    for _ in range(20):
        genotype = random_genotype(reference, rng, max_parameter_free=2)
        assert genotype_from_dict(genotype_to_dict(genotype)) == genotype  # passes validation
        assert genotype.layout == reference.layout and genotype.channels == reference.channels
        for cell in genotype.cells.values():
            for node, pairs in enumerate(cell):
                inputs = [state for _, state in pairs]
                assert len(set(inputs)) == 2 and all(0 <= s < 2 + node for s in inputs)
                assert all(op in reference.primitives and op != "none" for op, _ in pairs)
            free = sum(op in ops.PARAMETER_FREE_OPS for node in cell for op, _ in node)
            assert free <= 2  # the search's cap on parameter-free ops
        from_genotype(genotype)  # builds


def test_the_baseline_matches_the_reference_cost_and_is_deterministic_per_seed(reference):
    shape = (3, 32, 32)
    wanted = network_complexity(reference, shape)
    first, record = cost_matched_genotype(reference, shape, seed=3)
    again, _ = cost_matched_genotype(reference, shape, seed=3)
    other, _ = cost_matched_genotype(reference, shape, seed=4)
    assert first == again and first != other
    costs = network_complexity(first, shape)
    for kind in ("params", "flops"):
        assert abs(costs[kind] / wanted[kind] - 1) <= 0.05
        assert record[kind] == costs[kind] and record[f"reference_{kind}"] == wanted[kind]
    assert first.cells != reference.cells and record["tries"] >= 1


def _every_op(reference, op):
    """``reference`` with ``op`` on every edge: a cost far in the tail of the space's."""
    return dataclasses.replace(reference, cells={key: tuple(tuple((op, state) for _, state in node)
                                                            for node in cell)
                                                 for key, cell in reference.cells.items()})


def test_an_awkward_cost_is_matched_by_repairing_the_closest_draws(reference):
    """Every edge the most expensive op: no uniform draw comes near it, so the closest draws
    keep their wiring and have ops swapped until both costs are within the tolerance; the
    result is still random (per seed), and not the reference itself."""
    awkward = _every_op(reference, "sep_conv_3x3")
    shape = (3, 32, 32)
    wanted = network_complexity(awkward, shape)
    matched, record = cost_matched_genotype(awkward, shape, seed=1, max_tries=200,
                                            max_parameter_free=2)
    assert record["repaired_ops"] > 0 and record["tries"] == 200  # no plain draw matched
    costs = network_complexity(matched, shape)
    for kind in ("params", "flops"):
        assert abs(costs[kind] / wanted[kind] - 1) <= 0.05
    assert matched.cells != awkward.cells
    assert any(op != "sep_conv_3x3" for cell in matched.cells.values() for node in cell for op, _ in node)
    for cell in matched.cells.values():
        assert sum(op in ops.PARAMETER_FREE_OPS for node in cell for op, _ in node) <= 2
    again, _ = cost_matched_genotype(awkward, shape, seed=1, max_tries=200, max_parameter_free=2)
    other, _ = cost_matched_genotype(awkward, shape, seed=2, max_tries=200, max_parameter_free=2)
    assert again == matched and other != matched


def test_a_cost_the_space_cannot_reach_is_one_clear_error_naming_the_gap(reference):
    """Every op free, but random cells may hold at most 2 free ops (the search's cap): no
    genotype comes within 5%; the error names the closest gap and the flag that accepts it."""
    free = _every_op(reference, "skip_connect")
    with pytest.raises(NoCostMatchError, match=r"no random genotype within 5% of the reference's "
                                               r"params and FLOPs .* is \d+\.\d% off; accept that "
                                               r"with --tolerance [\d.]+, or try another --seed"):
        cost_matched_genotype(free, (3, 32, 32), seed=0, max_tries=20, max_parameter_free=2)


def test_no_match_within_the_tries_is_a_clear_error(reference):
    with pytest.raises(NoCostMatchError, match="no random genotype within 0% of the reference's "
                                               "params and FLOPs .* the closest of 3 draws with seed 0"):
        cost_matched_genotype(reference, (3, 32, 32), seed=0, tolerance=0.0, max_tries=3)


def test_the_command_writes_a_genotype_retrain_reads_with_the_searched_splits(
        tmp_path, reference, one_line_error, capsys):
    from nas import cli
    from nas.search import save_genotype

    run = tmp_path / "search"
    (run / "splits.json").parent.mkdir()
    (run / "splits.json").write_text('{"train": [], "val": [], "test": []}')
    like = save_genotype(run / "genotype.json", reference, dataset="dsb2018", splits="splits.json",
                         search={"image_size": 32, "max_parameter_free": None},
                         complexity={"input_shape": [3, 32, 32]}, output_activation="sigmoid",
                         data={"target": "binary"}, data_options={"modality": "CT"})
    out = tmp_path / "random" / "genotype.json"
    assert cli.main(["random-genotype", "--like", str(like), "--seed", "1", "--out", str(out)]) == 0
    assert "draw(s)" in capsys.readouterr().out
    genotype, metadata = load_genotype_file(out)
    assert metadata["dataset"] == "dsb2018" and metadata["search"]["image_size"] == 32
    assert metadata["splits"] == str((run / "splits.json").resolve())
    assert metadata["random_baseline"]["seed"] == 1
    # trained as the searched network is: the same output activation, target and data options
    assert (metadata["output_activation"], metadata["data"], metadata["data_options"]) == (
        "sigmoid", {"target": "binary"}, {"modality": "CT"})
    line = one_line_error(["random-genotype", "--like", like, "--seed", "0", "--out", out, "--overwrite",
                           "--tolerance", "0", "--tries", "2"])
    assert line.startswith("error: no random genotype within 0%") and "--tolerance" in line
