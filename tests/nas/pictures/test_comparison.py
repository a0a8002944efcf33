"""lwnas report over several runs: seed spread of searches, searched vs random retrained."""
import json

import pandas as pd
import pytest

from nas import cli
from nas.pictures.comparison import compare_runs
from nas.search import SearchConfig, run_search, save_genotype
from tests.synthetic import SquaresDataset


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    root = tmp_path_factory.mktemp("searches")
    for seed in (0, 1):
        config = SearchConfig.from_preset(
            "dsb2018", layout="1/0/1", epochs=2, channels=4, image_size=16, batch_size=2,
            num_workers=0, progress=False, drop_path=0.0, seed=seed)
        run_search(config, SquaresDataset(6, seed=1), SquaresDataset(4, seed=2),
                   root / f"seed{seed}")
    return [root / "seed0", root / "seed1"]


def _retrain_run(root, name, genotype_file, dsc, params):
    run = root / name
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({
        "dataset": "dsb2018", "genotype": str(genotype_file), "dsc": dsc, "miou": dsc - 0.1,
        "params": params, "flops": 2e6, "input_shape": [1, 16, 16]}))
    return run


def test_search_runs_are_summarised_across_seeds(searches):
    tables = compare_runs(searches, repeats=1)
    per_run = tables["searches"]
    assert list(per_run["seed"]) == [0, 1] and (per_run["epochs"] == 2).all()
    spread = tables["search_spread"].set_index("quantity")
    params = per_run["derived_params_M"]
    assert spread.loc["derived_params_M", "mean"] == pytest.approx(params.mean())
    assert spread.loc["derived_params_M", "std"] == pytest.approx(params.std())
    histogram = tables["op_histogram"]
    assert histogram.groupby("cell_type")["count"].sum().tolist() == [16, 16]  # 2 runs x 8 ops
    agreement = tables["edge_agreement"]
    assert agreement["runs_choosing_edge"].between(0.5, 1.0).all()  # each chosen by 1 or 2
    assert (agreement["op_agreement"] <= agreement["runs_choosing_edge"]).all()


def test_retrained_runs_are_grouped_searched_against_random(tmp_path, make_genotype):
    searched = save_genotype(tmp_path / "g.json", make_genotype(), dataset="dsb2018")
    random_file = save_genotype(tmp_path / "r.json", make_genotype(), dataset="dsb2018",
                                random_baseline={"seed": 0})
    runs = [_retrain_run(tmp_path, "s0", searched, 0.9, 1000),
            _retrain_run(tmp_path, "s1", searched, 0.8, 1000),
            _retrain_run(tmp_path, "r0", random_file, 0.7, 1000)]
    tables = compare_runs(runs, repeats=1)
    groups = tables["retrained_groups"].set_index("label")
    assert groups.loc["searched", "runs"] == 2
    assert groups.loc["searched", "dsc_mean"] == pytest.approx(0.85)
    assert groups.loc["searched", "dsc_std"] == pytest.approx(pd.Series([0.9, 0.8]).std())
    assert groups.loc["random (cost-matched)", "dsc_mean"] == pytest.approx(0.7)
    assert (tables["retrained"]["latency_ms"] > 0).all()


def test_the_command_needs_an_out_for_several_runs_and_writes_the_report(searches, tmp_path,
                                                                         one_line_error):
    assert one_line_error(["report", *searches]) == (
        "error: --out is needed to report several runs (where report.md goes)")
    assert cli.main(["report", *map(str, searches), "--out", str(tmp_path), "--repeats",
                     "1"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "## search_spread" in report and "## edge_agreement" in report
    assert (tmp_path / "report_op_histogram.csv").is_file()


def test_the_picture_plots_each_group_against_cost_with_the_seeds_point(tmp_path, make_genotype):
    from nas.pictures.comparison import comparison_figure
    from nas.presets import SEED_RESULTS

    searched = save_genotype(tmp_path / "g.json", make_genotype(), dataset="dsb2018")
    runs = [_retrain_run(tmp_path, "s0", searched, 0.9, 1000)]
    tables = compare_runs(runs, repeats=1)
    figure = comparison_figure(tables["retrained"], "dsb2018", SEED_RESULTS)
    params_axis, flops_axis = figure.axes
    assert params_axis.get_xscale() == flops_axis.get_xscale() == "log"
    points = [collection.get_offsets().tolist() for collection in params_axis.collections]
    assert [[0.001, 0.9]] in points  # the run: 1000 params = 0.001M, DSC 0.9
    seed = SEED_RESULTS["dsb2018"]
    assert [[seed["params_M"], seed["dsc"]]] in points
    assert cli.main(["report", str(runs[0]), "--out", str(tmp_path / "out"), "--repeats",
                     "1"]) == 0
    assert (tmp_path / "out" / "report_dsc_vs_cost.png").is_file()
