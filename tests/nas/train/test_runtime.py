"""--precision auto never picks what a device run measured slower (issue 26)."""
import pytest
import torch
from torch import nn

import models
from nas.train.runtime import resolve_precision, uses_grouped_convolutions
from supernet import USupernet, from_genotype

CUDA = torch.device("cuda")


@pytest.fixture
def bf16_capable_gpu(monkeypatch):
    """What a bf16-capable CUDA device reports (the rule is checked without one)."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


def test_auto_is_fp32_for_every_search(bf16_capable_gpu):
    # the search loop passes no network; its supernet is all depthwise/grouped convs anyway
    assert resolve_precision("auto", CUDA) is None
    supernet = USupernet(3, 1, channels=8, layout="1/0/1")
    assert uses_grouped_convolutions(supernet)
    assert resolve_precision("auto", CUDA, supernet) is None


@pytest.mark.parametrize("name", ["mfsnet", "dmfnet", "mfnet", "mf_res2net"])
def test_auto_is_fp32_for_grouped_convolution_networks(bf16_capable_gpu, name):
    network = models.build(name)
    assert uses_grouped_convolutions(network)
    assert resolve_precision("auto", CUDA, network) is None


def test_auto_is_fp32_for_a_searched_network(bf16_capable_gpu, make_genotype):
    network = from_genotype(make_genotype())  # sep/dil/ghost/sk/shuffle: depthwise convs
    assert resolve_precision("auto", CUDA, network) is None


def test_auto_keeps_bf16_for_dense_networks_on_cuda_only(bf16_capable_gpu):
    network = models.build("unet3d", widths=((4, 4), (4, 8)), decoder_convs=(1,))
    assert not uses_grouped_convolutions(network)
    assert resolve_precision("auto", CUDA, network) is torch.bfloat16
    assert resolve_precision("auto", torch.device("cpu"), network) is None


def test_auto_is_fp32_on_a_gpu_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", CUDA, nn.Conv2d(3, 3, 3)) is None


def test_bf16_stays_available_by_flag(bf16_capable_gpu):
    supernet = USupernet(3, 1, channels=8, layout="1/0/1")
    assert resolve_precision("bf16", CUDA, supernet) is torch.bfloat16
    assert resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16
    assert resolve_precision("fp16", CUDA, supernet) is torch.float16
    assert resolve_precision("fp32", CUDA, nn.Conv2d(3, 3, 3)) is None
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("half", CUDA)


def test_grouped_convolution_detection():
    assert not uses_grouped_convolutions(nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU()))
    assert uses_grouped_convolutions(nn.Sequential(nn.Conv3d(4, 4, 3, groups=2)))
    assert uses_grouped_convolutions(nn.Conv2d(4, 4, 3, groups=4))  # depthwise
    assert uses_grouped_convolutions(nn.ConvTranspose2d(4, 4, 2, groups=2))


def test_the_first_progress_line_says_when_cudnn_autotunes():
    from nas.train.runtime import autotuning_note

    assert "cuDNN autotuning" in autotuning_note(CUDA) and "--deterministic" in autotuning_note(CUDA)
    assert autotuning_note(CUDA, deterministic=True) == "; cuDNN autotuning off (--deterministic)"
    assert autotuning_note(torch.device("cpu")) == ""  # nothing is tuned on CPU


def test_search_prints_the_note_in_its_first_line(monkeypatch, tmp_path, capsys):
    """The note reaches the search's first progress line (the device is the CPU here, so the
    note is faked; on CUDA it is the real one)."""
    from nas.run import searching

    monkeypatch.setattr(searching, "autotuning_note",
                        lambda device, deterministic: f"; NOTE deterministic={deterministic}")
    searching.search("dsb2018", None, tmp_path / "run", epochs=1, image_size=16, channels=4,
                     layout="1/0/1", num_workers=0, progress=False, pictures=False,
                     deterministic=True)
    first = capsys.readouterr().out.strip().splitlines()[0]
    assert first.startswith("search dsb2018:") and first.endswith("; NOTE deterministic=True")
