"""Genotype files: round trip, and a one-line error for each malformed file."""
import json

import pytest

from nas.search import genotype_file as genotype_io
from nas.search.genotype_file import GenotypeError, load_genotype, load_genotype_file, save_genotype


@pytest.fixture
def genotype(make_genotype):
    return make_genotype((2, 3, 2), channels=16, in_channels=3)


def test_round_trip_keeps_genotype_and_metadata(tmp_path, genotype):
    path = save_genotype(tmp_path / "g.json", genotype, dataset="dsb2018",
                         alphas={"encoder": [[0.125] * 8] * 14},
                         complexity={"params": 123, "flops": 456})
    loaded, data = load_genotype_file(path)
    assert loaded == genotype
    assert data["version"] == 1 and data["dataset"] == "dsb2018"
    assert data["complexity"]["params"] == 123 and data["alphas"]["encoder"][0][0] == 0.125
    assert not list(tmp_path.glob(".*tmp"))  # the temp file was renamed, not left behind


def _write(tmp_path, mutate, genotype):
    data = genotype_io.genotype_to_dict(genotype)
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def _set(key, value):
    def mutate(data):
        data[key] = value
    return mutate


def _cell_pair(node, pair, value):
    def mutate(data):
        data["cells"]["middle"][node][pair] = value
    return mutate


MALFORMED = [
    (_set("version", 2), "unsupported genotype version 2"),
    (_set("space", "nasnet"), "unknown space 'nasnet'"),
    (_cell_pair(1, 1, ["sep_conv_7x7", 2]), "cell 'middle' node 1: unknown op 'sep_conv_7x7'"),
    (_cell_pair(0, 0, ["ghost", 2]), "cell 'middle' node 0: bad input index 2"),
    (_cell_pair(3, 1, ["ghost", -1]), "bad input index -1"),
    (_cell_pair(2, 0, ["ghost"]), "expected [op, input_index]"),
    (lambda d: d["cells"]["encoder"].pop(), "cell 'encoder' must list 4 nodes, got 3"),
    (lambda d: d.pop("cells"), "missing field(s) cells"),
    (_set("cell_types", ["encoder"] * 6), "one key per cell (7"),
    (_set("cell_types", ["encoder"] * 6 + ["bottom"]), "cell type 'bottom'"),
    (_set("layout", {"encoder": 2, "middle": 3, "decoder": 1}), "bad layout"),
    (_set("channels", 0), "'channels' must be an integer >= 1"),
    (_set("spatial_dims", 4), "'spatial_dims' must be 2 or 3"),
]


@pytest.mark.parametrize("mutate,message", MALFORMED)
def test_each_malformed_file_gives_its_one_line_error(tmp_path, mutate, message, genotype):
    path = _write(tmp_path, mutate, genotype)
    with pytest.raises(GenotypeError) as error:
        load_genotype(path)
    text = str(error.value)
    assert message in text and "\n" not in text and text.startswith(str(path))


def test_unreadable_and_non_json_files(tmp_path):
    with pytest.raises(GenotypeError, match="cannot read"):
        load_genotype(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{'version': 1}")  # Python, not JSON: never evaluated
    with pytest.raises(GenotypeError, match="not valid JSON"):
        load_genotype(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(GenotypeError, match="expected a JSON object"):
        load_genotype(bad)


def test_metadata_may_not_overwrite_the_architecture(tmp_path, genotype):
    with pytest.raises(ValueError, match="clash"):
        save_genotype(tmp_path / "g.json", genotype, cells={})
