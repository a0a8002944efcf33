"""bench/models3d.py end to end on tiny networks: every figure, the ratios, the markdown."""
import pytest
import torch

import models
from bench import models3d

#: end-to-end runs of real commands and processes (still run by `make test`)
pytestmark = pytest.mark.slow

TINY = {"unet3d": {"widths": ((4, 4), (4, 8)), "decoder_convs": (1,)},
        "mfsnet": {"base_channels": 16, "channels": 16}}


def _tiny_network(name, size, device, channels_last):
    network = models.build(name, **TINY[name]).to(device)
    return network.to(memory_format=torch.channels_last_3d) if channels_last else network


def test_benchmark_reports_ratios_to_unet3d(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(models3d, "build_network", _tiny_network)
    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\nan earlier section\n")
    frame = models3d.main(["--models", "mfsnet", "--size", "16", "--volume", "24x20x16",
                           "--warmup", "0", "--repeats", "1", "--device", "cpu",
                           "--output", str(output)])
    assert list(frame["model"]) == ["unet3d", "mfsnet"]  # the reference always runs, first
    reference = frame.iloc[0]
    assert reference[["train_ratio", "memory_ratio", "volume_ratio"]].tolist() == [1, 1, 1]
    mfs = frame.iloc[1]
    for column in ("train_step_ms", "memory_MB", "volume_s"):
        assert mfs[column] > 0
    assert mfs["memory_ratio"] == pytest.approx(mfs["memory_MB"] / reference["memory_MB"],
                                                rel=1e-2)
    text = output.read_text()
    # appended after what was there, with the command, the table and the per-case verdict
    assert text.startswith("# Benchmarks\n\nan earlier section\n")
    assert text.count("# Benchmarks") == 1 and text.count("## models3d") == 1
    assert "| mfsnet" in text and "MFS-Net per case" in text
    assert "`python -m bench.models3d --models mfsnet --size 16" in text


def test_fastest_settings_picks_per_network():
    import pandas as pd

    frame = pd.DataFrame({
        "model": ["unet3d", "unet3d", "mfsnet", "mfsnet"],
        "precision": ["fp32", "bf16", "fp32", "bf16"],
        "train_step_ms": [10.0, 6.0, 4.0, 5.0], "volume_s": [2.0, 1.0, 0.5, 0.7]})
    fastest = models3d.fastest_settings(frame).set_index("model")
    assert fastest.loc["unet3d", "fastest train"] == "bf16"
    assert fastest.loc["mfsnet", "fastest train"] == "fp32"
    assert fastest.loc["mfsnet", "fastest volume"] == "fp32"


def test_rows_are_written_as_they_are_measured_and_a_time_limit_is_a_row(tmp_path,
                                                                          monkeypatch):
    output = tmp_path / "BENCHMARKS.md"

    def build_or_fail(name, size, device, channels_last):
        if name == "mfsnet":  # the machine is taken back during the second network
            raise KeyboardInterrupt
        return _tiny_network(name, size, device, channels_last)

    monkeypatch.setattr(models3d, "build_network", build_or_fail)
    options = ["--models", "mfsnet", "--size", "16", "--volume", "24x20x16", "--warmup", "0",
               "--repeats", "1", "--device", "cpu", "--output", str(output)]
    with pytest.raises(KeyboardInterrupt):
        models3d.main(options)
    assert "| unet3d | fp32 |" in output.read_text()  # written before the second began
    monkeypatch.setattr(models3d, "build_network", _tiny_network)
    frame = models3d.main(options + ["--variant-timeout", "0"])
    assert frame["note"].str.startswith("over the 0 s limit").all()
    assert frame["train_step_ms"].isna().all()
    assert output.read_text().count("over the 0 s limit") == 2
