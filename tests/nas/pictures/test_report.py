"""Complexity report of a derived network beside the plain U-Net."""
import json

import pandas as pd
import pytest

import ops
from nas import cli, complexity
from nas.pictures import report
from nas.search.genotype_file import save_genotype
from supernet import from_genotype


@pytest.fixture(scope="module")
def genotype(make_genotype):
    return make_genotype()


@pytest.fixture(scope="module")
def tables(genotype):
    return report.build_report(genotype, (32, 32), repeats=1)


def test_network_table_compares_with_the_baseline(tables, genotype):
    network = tables["network"].set_index("network")
    ours = complexity.profile(from_genotype(genotype), (1, 1, 32, 32))
    assert network.loc["derived", "params_M"] * 1e6 == ours["params"]
    assert network.loc["derived", "flops_G"] * 1e9 == pytest.approx(ours["flops"])
    assert network.loc["unet_baseline", "params_M_ratio"] == 1.0
    assert network.loc["derived", "params_M_ratio"] < 0.01
    assert (network["latency_ms"] > 0).all() and (network["activation_MB"] > 0).all()


def test_cell_and_op_tables_add_up(tables):
    cells, op_rows = tables["cells"], tables["ops"]
    assert list(cells["kind"]) == ["encoder", "middle", "decoder"]
    assert list(cells["width"]) == [8, 16, 8] and list(cells["scale"]) == ["1/1", "1/2", "1/1"]
    assert len(op_rows) == 3 * 8
    # each op's params equal a standalone op of that width (middle cell: width 16, 16x16)
    middle_sk = op_rows[(op_rows["cell"] == 1) & (op_rows["op"] == "sk")].iloc[0]
    standalone = complexity.profile(ops.build("sk", 16), (1, 16, 16, 16))
    assert middle_sk["params_k"] * 1e3 == pytest.approx(standalone["params"])
    assert middle_sk["flops_M"] * 1e6 == pytest.approx(standalone["flops"])
    # a cell's count is its ops plus its 1x1 input/output projections
    assert (cells["params_k"] > op_rows.groupby("cell")["params_k"].sum()).all()


def test_cli_writes_csv_and_markdown(tmp_path, capsys, genotype):
    save_genotype(tmp_path / "genotype.json", genotype,
                  complexity={"input_shape": [1, 24, 24]})
    assert cli.main(["report", str(tmp_path), "--repeats", "1"]) == 0
    for name in ("network", "cells", "ops"):
        assert len(pd.read_csv(tmp_path / f"report_{name}.csv")) > 0
    markdown = (tmp_path / "report.md").read_text()
    assert "24x24" in markdown and "| derived" in markdown
    assert "unet_baseline" in capsys.readouterr().out
    # a retrain run points at its genotype through metrics.json
    retrain = tmp_path / "retrain"
    retrain.mkdir()
    (retrain / "metrics.json").write_text(json.dumps({"genotype": str(tmp_path /
                                                                      "genotype.json")}))
    assert report.find_genotype(retrain) == tmp_path / "genotype.json"
    with pytest.raises(FileNotFoundError, match="no genotype.json"):
        report.find_genotype(tmp_path / "retrain" / "missing")
