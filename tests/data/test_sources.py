"""The registry (data.sources.DATA_SETS): one entry per data set, saying how it is trained on and
how new images of it are read, and the descriptions a checkpoint carries name that reader."""
import pytest

import data
from data.sources import DATA_SETS, source_for


def test_every_data_set_with_a_preset_is_registered():
    assert set(DATA_SETS) == set(data.list_datasets())
    assert set(data.ROOT_SOURCES) == {name for name, entry in DATA_SETS.items() if entry.source is None}


@pytest.mark.parametrize("name", list(DATA_SETS))
def test_the_preprocessing_description_names_the_data_sets_reader(name):
    entry = DATA_SETS[name]
    preprocessing = data.preprocessing_spec(name)
    root = data.sample_root(name) if name in data.ROOT_SOURCES else None
    options = {**data.get_preset(name).options}
    assert source_for(name, root, options).kind == preprocessing["kind"]
    if entry.inputs is None:  # read whole by the 3D predictor, not as 2D inputs
        assert preprocessing["inputs"] not in data.input_formats()
    else:
        assert preprocessing["inputs"] == entry.inputs.name and entry.inputs.name in data.input_formats()
