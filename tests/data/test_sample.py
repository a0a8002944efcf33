"""Sample data: real formats, small, deterministic, and learnable."""

from __future__ import annotations

import hashlib

import numpy as np
import pydicom
import pytest

import data
from data.sample.__main__ import main as sample_main
from tests.data.closed_form import chance_dice, dice, fit_threshold, shuffled_pixels, split_arrays


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


@pytest.mark.parametrize("name, options", [
    ("dsb2018", {}),
    ("chaos", {}),
    ("promise12", {}),
    ("brats", {"target": "regions", "crop_size": 24}),
])
def test_learnable_by_a_closed_form_classifier(samples, tmp_path, name, options):
    """A Dice-best intensity threshold fitted on the train split beats the chance Dice
    (everything foreground) clearly on the test split, for every target channel; fitted on
    pixel-shuffled labels it stays at chance (so the margin comes from the image-label relation)."""
    train = data.get_dataset(name, samples / name, cache_dir=tmp_path, augment=False, **options)
    test = data.get_dataset(name, samples / name, "test", cache_dir=tmp_path, augment=False, **options)
    if name != "brats":  # the sample's default size, although its root was given
        assert train[0]["image"].shape[-1] == 64
    train_images, train_labels = split_arrays(train)
    test_images, test_labels = split_arrays(test)
    for channel in range(train_labels.shape[1]):  # one binary mask, or the BraTS regions
        truth = test_labels[:, channel] > 0.5
        chance = chance_dice(truth)
        fitted = fit_threshold(train_images, train_labels[:, channel] > 0.5)
        score = dice(fitted.predict(test_images), truth)
        assert score > max(0.5, chance + 0.25), (channel, score, chance)
        control = fit_threshold(train_images, shuffled_pixels(train_labels[:, channel] > 0.5))
        assert dice(control.predict(test_images), truth) < chance + 0.05, channel
