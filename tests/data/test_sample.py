"""Sample data: real formats, small, deterministic, and learnable."""

from __future__ import annotations

import hashlib

import numpy as np
import pydicom
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

import data
from data.sample.__main__ import main as sample_main


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("samples")
    assert sample_main(["--dataset", "all", "--out", str(out)]) == 0
    return out


def digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_small_and_deterministic(samples, tmp_path):
    total = sum(p.stat().st_size for p in samples.rglob("*") if p.is_file())
    assert total < 20 * 2**20
    for name in ("chaos", "dsb2018"):  # the two with the most files
        again = data.write_sample(name, tmp_path / name)
        assert digests(again) == digests(samples / name)


def test_every_sample_reads_with_the_real_readers(samples):
    assert len(data.find_chaos_cases(samples / "chaos")) == 6
    assert len(data.find_chaos_cases(samples / "chaos", "MR")) == 4
    assert len(data.find_dsb2018_cases(samples / "dsb2018")) == 12
    assert len(data.find_promise12_cases(samples / "promise12")) == 5
    cases = data.find_brats_cases(samples / "brats")
    assert [c.name for c in cases] == [f"BraTS2021_0000{i}" for i in range(1, 5)]


def test_chaos_ct_headers_and_one_bit_masks(samples):
    patients = data.find_chaos_cases(samples / "chaos")
    directions = set()
    for patient in patients:
        dicoms = sorted((patient / "DICOM_anon").glob("*.dcm"))
        first, last = (pydicom.dcmread(p) for p in (dicoms[0], dicoms[-1]))
        assert first.Modality == "CT" and first.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert float(first.RescaleIntercept) == -1024 and float(first.RescaleSlope) == 1
        assert len(first.PixelSpacing) == 2 and float(first.SliceThickness) > 0
        directions.add(np.sign(float(last.ImagePositionPatient[2]) - float(first.ImagePositionPatient[2])))
        mask = sorted((patient / "Ground").glob("liver_GT_*.png"))[0].read_bytes()
        assert mask[24] == 1 and mask[25] == 0  # IHDR: bit depth 1, greyscale
    assert directions == {-1.0, 1.0}  # some patients run down in z, as in the real data
    assert any(p.name.startswith("IMG-") for p in (patients[2] / "DICOM_anon").iterdir())


def test_root_none_writes_the_sample_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LWNAS_CACHE", str(tmp_path))
    root = data.sample_root("dsb2018")
    assert root == tmp_path / "sample" / "dsb2018"
    stamp = (root / "lwnas-sample.json").stat().st_mtime_ns
    assert data.sample_root("dsb2018") == root
    assert (root / "lwnas-sample.json").stat().st_mtime_ns == stamp


def tiny_net(channels, classes, dims):
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    layers = []
    width = channels
    for dilation in (1, 2, 4):
        layers += [conv(width, 16, 3, padding=dilation, dilation=dilation), norm(16), nn.ReLU()]
        width = 16
    return nn.Sequential(*layers, conv(16, classes, 1))


@pytest.fixture
def one_thread():
    # Other jobs share the CPU; two threads contending for it run ~20x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name, steps, options", [
    ("dsb2018", 30, {}),
    ("chaos", 60, {}),
    ("promise12", 20, {}),
    ("brats", 30, {"target": "regions", "crop_size": 24}),
])
def test_learnable_in_a_few_cpu_epochs(samples, tmp_path, one_thread, name, steps, options):
    """A 3-layer net beats the chance Dice (everything foreground) clearly on the test split."""
    torch.manual_seed(0)
    train = data.get_dataset(name, samples / name, cache_dir=tmp_path, **options)
    test = data.get_dataset(name, samples / name, "test", cache_dir=tmp_path, **options)
    if name != "brats":  # the sample's default size, although its root was given
        assert train[0]["image"].shape[-1] == 64
    model = tiny_net(train.in_channels, train.num_classes, train.spatial_dims)
    optimiser = torch.optim.Adam(model.parameters(), 1e-2)
    # the batches of training's loader (nas.train.loader.make_loader): seed 0, one replica, no partial batch
    sampler = DistributedSampler(train, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=True)
    loader = DataLoader(train, batch_size=4 if train.spatial_dims == 2 else 2, sampler=sampler, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    done = 0
    while done < steps:
        for batch in loader:
            logits = model(batch["image"])
            probability = torch.sigmoid(logits)
            target = batch["label"]
            soft_dice = (2 * (probability * target).sum() + 1) / (probability.sum() + target.sum() + 1)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, target) + 1 - soft_dice
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            done += 1
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([(model(test[i]["image"][None])[0] > 0).float() for i in range(len(test))])
        targets = torch.cat([test[i]["label"] for i in range(len(test))])
    dice = float(2 * (predictions * targets).sum() / (predictions.sum() + targets.sum()))
    share = float(targets.mean())
    chance = 2 * share / (1 + share)
    assert dice > max(0.5, chance + 0.25), (dice, chance)
