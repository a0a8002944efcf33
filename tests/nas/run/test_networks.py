"""Self-describing checkpoints: the inference description is built from the data layer's facts,
loads with ``weights_only=True``, rebuilds the network alone, and an old or inconsistent one is
one line naming the file and what is missing."""
import configparser
from pathlib import Path

import pytest
import torch

import data
import nas
from nas.presets import BASELINE_MODELS_2D
from nas.run import networks
from nas.train import load_checkpoint, save_checkpoint
from supernet import from_genotype
from tests.runs import untrained_genotype_checkpoint

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, make_genotype):
    return untrained_genotype_checkpoint(tmp_path_factory.mktemp("spec") / "best.pt",
                                         make_genotype(in_channels=3), "dsb2018")


def test_the_description_holds_what_inference_needs_from_the_data_layer(checkpoint, make_genotype):
    state = torch.load(checkpoint, weights_only=True)  # plain types only
    spec = state["spec"]
    assert set(spec) == set(networks.SPEC_FIELDS)
    train = data.get_dataset("dsb2018", split="train", augment=False)
    assert spec["preprocessing"] == data.preprocessing_spec("dsb2018", train.root, **train.options)
    assert spec["preprocessing"]["image_size"] == 64 and spec["preprocessing"]["channels"] == ["red", "green", "blue"]
    assert spec["labels"] == data.label_spec("dsb2018") == {
        "values": [0, 1], "names": ["background", "nucleus"], "activation": "sigmoid", "decision": "threshold",
        "threshold": 0.5, "foreground": 1, "png_foreground": 255}
    assert spec["input"] == {"channels": ["red", "green", "blue"], "size": [64, 64]}
    assert spec["network"]["genotype"]["cells"]["encoder"][0] == [["sep_conv_3x3", 0], ["ghost", 1]]
    assert spec["dataset"] == "dsb2018" and spec["training"]["splits"] == train.splits


def test_the_version_is_the_projects(checkpoint):
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["metadata"]["version"] == "attr: nas.__version__"  # setup.cfg reads the one number
    assert networks.read_spec(checkpoint)[0]["lwnas_version"] == nas.__version__


def test_the_network_is_rebuilt_from_the_description_alone(checkpoint, make_genotype):
    network, spec = networks.load_network(checkpoint)
    torch.manual_seed(0)
    reference = from_genotype(make_genotype(in_channels=3)).eval()  # the seeded initial weights
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(network(x), reference(x))
    assert not network.training


def _without(checkpoint, path, *fields):
    state = load_checkpoint(checkpoint)
    for field in fields:
        if field == "spec":
            state.pop("spec")
        else:
            state["spec"].pop(field)
    return save_checkpoint(path, state)


def test_an_old_checkpoint_names_the_missing_fields_in_one_line(checkpoint, tmp_path):
    old = _without(checkpoint, tmp_path / "old.pt", "spec")
    with pytest.raises(networks.CheckpointSpecError) as error:
        networks.load_network(old)
    message = str(error.value)
    assert message.startswith(f"{old}: no inference description; missing fields spec.format, spec.lwnas_version, "
                              "spec.dataset, spec.spatial_dims, spec.network, spec.input, spec.preprocessing, "
                              "spec.labels, spec.training")
    assert "\n" not in message and "retrain it" in message
    partial = _without(checkpoint, tmp_path / "partial.pt", "labels", "training")
    with pytest.raises(ValueError, match=r"lacks fields spec\.labels, spec\.training$"):
        networks.read_spec(partial)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["network"].update(in_channels=1), "the network takes 1 input channel(s), its preprocessing gives 3"),
    (lambda s: s["network"].update(num_classes=2), "2 output channel(s), its label map's threshold decision needs 1"),
    (lambda s: s.update(format=99), "inference description format 99; this lwnas"),
    (lambda s: s["labels"].update(decision="vote"), "unknown label decision 'vote'"),
    (lambda s: s["preprocessing"].pop("channels"), "preprocessing lacks channels"),
    (lambda s: s["network"].update(kind="onnx"), "network entry of unknown kind 'onnx'"),
    (lambda s: s["input"].update(size=[32, 32]), "input size [32, 32] differs from the preprocessing's image size 64"),
])
def test_an_inconsistent_description_is_refused_naming_the_problem(checkpoint, tmp_path, edit, message):
    state = load_checkpoint(checkpoint)
    edit(state["spec"])
    path = save_checkpoint(tmp_path / "edited.pt", state)
    with pytest.raises(networks.CheckpointSpecError) as error:
        networks.load_network(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_weights_of_another_network_are_refused(checkpoint, tmp_path, make_genotype):
    state = load_checkpoint(checkpoint)
    state["model"] = from_genotype(make_genotype(in_channels=3, channels=4)).state_dict()
    path = save_checkpoint(tmp_path / "other.pt", state)
    with pytest.raises(ValueError, match="weights do not fit the genotype network its description names"):
        networks.load_network(path)
    with pytest.raises(ValueError, match="holds a genotype network; expected unet2d"):
        networks.load_network(checkpoint, expected_model="unet2d")


def test_every_2d_baseline_has_a_builder():
    assert set(networks.BASELINE_BUILDERS) == set(BASELINE_MODELS_2D)


def test_the_cli_refuses_an_old_checkpoint_in_one_line(checkpoint, tmp_path, one_line_error):
    old = _without(checkpoint, tmp_path / "old.pt", "spec")
    line = one_line_error(["predict", "--checkpoint", old, "--input", tmp_path, "--output", tmp_path / "out"])
    assert line.startswith(f"error: {old}: no inference description; missing fields spec.format")
    assert not (tmp_path / "out").exists()
