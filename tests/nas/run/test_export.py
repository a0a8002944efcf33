"""``lwnas export``: ONNX and TorchScript files of a derived network, the 2D U-Net baseline and
MFS-Net give the network's own output (onnxruntime within 1e-4, TorchScript reloaded with
``torch.jit.load``) at the training size, at another batch size and at a larger spatial size,
and their JSON sidecar carries what a user needs."""
import json
import warnings

import numpy as np
import onnxruntime
import pytest
import torch

import models
from nas import cli
from nas.run import export as exporting
from nas.run import export_checkpoint
from nas.run.networks import load_network
from nas.train import load_checkpoint, save_checkpoint
from tests.runs import TINY_MFSNET, untrained_genotype_checkpoint, untrained_model_checkpoint

#: end-to-end runs of real commands (still run by `make test`)
pytestmark = pytest.mark.slow

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, make_genotype, retrained_2d):
    root = tmp_path_factory.mktemp("export")
    return {
        # a derived network retrained for an epoch (one encoder level), and an untrained one with two
        "derived": retrained_2d("dsb2018") / "best.pt",
        "derived_2_1_2": untrained_genotype_checkpoint(root / "derived.pt", make_genotype(
            layout=(2, 1, 2), in_channels=3), "dsb2018"),
        "unet2d": untrained_model_checkpoint(root / "unet2d.pt", "unet2d", models.plain_unet(3, 1, 2),
                                             {"spatial_dims": 2}, 3, "dsb2018"),
        "mfsnet": untrained_model_checkpoint(root / "mfsnet.pt", "mfsnet",
                                             models.build("mfsnet", in_channels=4, **TINY_MFSNET), TINY_MFSNET,
                                             4, "brats", input_size=(32, 32, 32), target="index"),
    }


def _inputs(spec, network):
    """The training size, a batch of 3, and a batch of 2 two spatial multiples larger per axis."""
    generator = torch.Generator().manual_seed(7)
    channels, size = spec["network"]["in_channels"], spec["input"]["size"]
    multiple = exporting.spatial_multiple(spec, network)
    return [torch.randn(1, channels, *size, generator=generator),
            torch.randn(3, channels, *size, generator=generator),
            torch.randn(2, channels, *(s + 2 * multiple for s in size), generator=generator)]


NAMES = ("derived", "derived_2_1_2", "unet2d", "mfsnet")


@pytest.mark.parametrize("name", NAMES)
def test_onnx_runtime_gives_the_network_output(checkpoints, name, tmp_path):
    network, spec = load_network(checkpoints[name])
    report = export_checkpoint(checkpoints[name], "onnx", tmp_path / "net.onnx")
    assert report.dynamic_spatial and report.max_abs_difference < TOLERANCE
    session = onnxruntime.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    for x in _inputs(spec, network):
        (output,) = session.run(["logits"], {"image": x.numpy()})
        with torch.no_grad():
            expected = network(x).numpy()
        assert output.shape == expected.shape == (x.shape[0], spec["network"]["num_classes"], *x.shape[2:])
        np.testing.assert_allclose(output, expected, rtol=0, atol=TOLERANCE)
    sidecar = json.loads(report.sidecar.read_text())
    assert report.sidecar == tmp_path / "net.onnx.json"
    assert sidecar["preprocessing"] == spec["preprocessing"] and sidecar["labels"] == spec["labels"]
    assert sidecar["input"]["size"] == spec["input"]["size"]
    assert sidecar["input"]["channels"] == spec["input"]["channels"]
    assert sidecar["genotype"] == spec["network"].get("genotype") and sidecar["network"] == spec["network"]
    dims = spec["spatial_dims"]
    assert set(sidecar["input"]["dynamic_axes"]) == {"0", *(str(2 + axis) for axis in range(dims))}
    assert sidecar["check"]["max_abs_difference"] == report.max_abs_difference


@pytest.mark.parametrize("name", NAMES)
def test_torchscript_reloads_and_gives_the_network_output(checkpoints, name, tmp_path):
    network, spec = load_network(checkpoints[name])
    report = export_checkpoint(checkpoints[name], "torchscript", tmp_path / "net.pt")
    with warnings.catch_warnings():  # torch.jit is deprecated in recent torch, still supported
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(tmp_path / "net.pt"))
    for x in _inputs(spec, network):
        with torch.no_grad():
            np.testing.assert_allclose(loaded(x).numpy(), network(x).numpy(), rtol=0, atol=1e-5)
    sidecar = json.loads((tmp_path / "net.pt.json").read_text())
    assert sidecar["format"] == "torchscript" and sidecar["labels"] == spec["labels"]
    assert report.max_abs_difference < 1e-5


def test_the_spatial_multiple_follows_the_encoder_levels_or_the_networks_padding(checkpoints):
    multiples = {}
    for name in NAMES:
        network, spec = load_network(checkpoints[name])
        multiples[name] = exporting.spatial_multiple(spec, network)
    assert multiples == {"derived": 2, "derived_2_1_2": 4, "unet2d": 16, "mfsnet": 16}
    sidecar = json.loads(export_checkpoint(checkpoints["unet2d"], "torchscript", checkpoints["unet2d"].with_name(
        "unet.pt")).sidecar.read_text())
    assert sidecar["input"]["spatial_multiple"] == 16


class _SizeBaked(torch.nn.Module):
    """Its forward reads a size as a Python int: a trace bakes in the example's size."""

    num_classes = 1

    def forward(self, x):
        return x[:, :1] * float(int(x.shape[-1]))


def test_a_graph_that_holds_only_its_traced_size_is_exported_with_a_fixed_size(checkpoints, tmp_path,
                                                                                monkeypatch):
    _, spec = load_network(checkpoints["unet2d"])
    monkeypatch.setattr(exporting, "load_predictor", lambda path, device, folds=None: (_SizeBaked(), spec))
    for fmt, name in (("onnx", "baked.onnx"), ("torchscript", "baked.pt")):
        report = export_checkpoint(checkpoints["unet2d"], fmt, tmp_path / name)
        assert not report.dynamic_spatial and report.max_abs_difference == 0.0
        sidecar = json.loads(report.sidecar.read_text())
        assert sidecar["input"]["dynamic_axes"] == {"0": "batch"} and sidecar["input"]["spatial_multiple"] is None


def test_the_cli_exports_and_refuses_in_one_line(checkpoints, tmp_path, capsys, one_line_error):
    out = tmp_path / "net.onnx"
    assert cli.main(["export", "--checkpoint", str(checkpoints["derived"]), "--format", "onnx",
                     "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{out} (onnx, dynamic batch and spatial size; max abs difference" in printed
    assert out.is_file() and (tmp_path / "net.onnx.json").is_file()
    state = load_checkpoint(checkpoints["derived"])
    state.pop("spec")
    old = save_checkpoint(tmp_path / "old.pt", state)
    line = one_line_error(["export", "--checkpoint", old, "--format", "torchscript", "--output",
                           tmp_path / "old-net.pt"])
    assert line.startswith(f"error: {old}: no inference description; missing fields spec.format")
    assert not (tmp_path / "old-net.pt").exists()
