"""Preprocessed-array cache: the second pass reads no source file; edits and
settings invalidate; writers on several hosts never share a partial folder and the first
complete one wins. (The loader serving batches from it: tests/nas/train/test_loader.py.)"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

import data
import data.chaos
import data.io.dicom
import data.io.nifti
import data.io.png
from data.cache import CaseCache, partial_name
from data.sample.brats import write_brats
from data.sample.chaos import write_chaos


def forbid(monkeypatch, module, name):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{module.__name__}.{name} called: the cache was bypassed")
    monkeypatch.setattr(module, name, refuse)


@pytest.fixture
def chaos_root(tmp_path):
    return write_chaos(tmp_path / "chaos", ct_patients=("1", "2", "5", "6"), mr_patients=(), slices=3, ct_size=32)


def test_second_epoch_and_second_run_read_no_dicom_or_png(chaos_root, tmp_path, monkeypatch):
    first = data.get_dataset("chaos", chaos_root, "train", image_size=16, cache_dir=tmp_path / "cache")
    epoch_one = [first[i]["label"] for i in range(len(first))]
    forbid(monkeypatch, data.io.dicom.pydicom, "dcmread")
    forbid(monkeypatch, data.io.png.sitk, "ReadImage")
    epoch_two = [first[i]["label"] for i in range(len(first))]  # memory maps only
    again = data.get_dataset("chaos", chaos_root, "train", image_size=16, cache_dir=tmp_path / "cache")
    assert again.cases == first.cases and len(epoch_two) == len(epoch_one) > 0
    assert again[0]["image"].shape == (1, 16, 16)


def test_second_run_reads_no_nifti(tmp_path, monkeypatch):
    root = write_brats(tmp_path / "brats", cases=3, shape=(12, 12, 10))
    first = data.get_dataset("brats", root, "test", cache_dir=tmp_path / "cache")
    reference = first[0]["image"]
    forbid(monkeypatch, data.io.nifti.nib, "load")
    again = data.get_dataset("brats", root, "test", cache_dir=tmp_path / "cache")
    torch.testing.assert_close(again[0]["image"], reference)


def test_edited_source_and_changed_settings_rebuild(chaos_root, tmp_path, monkeypatch):
    calls = []
    real = data.chaos.read_chaos_case
    monkeypatch.setattr(data.chaos, "read_chaos_case", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    cache = tmp_path / "cache"
    data.get_dataset("chaos", chaos_root, "test", image_size=16, cache_dir=cache)
    assert len(calls) == 2
    data.get_dataset("chaos", chaos_root, "test", image_size=16, cache_dir=cache, organs=False)
    assert len(calls) == 2  # an item option: same arrays
    data.get_dataset("chaos", chaos_root, "test", image_size=8, cache_dir=cache)
    assert len(calls) == 4  # a preprocessing setting: new arrays
    dicom = sorted((calls[0] / "DICOM_anon").glob("*.dcm"))[0]
    dicom.write_bytes(dicom.read_bytes())  # same bytes, new modification time
    data.get_dataset("chaos", chaos_root, "test", image_size=16, cache_dir=cache)
    assert len(calls) == 5 and calls[-1] == calls[0]


def test_cache_lives_under_lwnas_cache_not_the_data_root(chaos_root, tmp_path, monkeypatch):
    monkeypatch.setenv("LWNAS_CACHE", str(tmp_path / "env-cache"))
    before = sorted(p for p in chaos_root.rglob("*"))
    data.get_dataset("chaos", chaos_root, "val", image_size=16)
    assert sorted(p for p in chaos_root.rglob("*")) == before
    assert list((tmp_path / "env-cache" / "preprocessed" / "chaos").glob("*/image.npy"))
    data.clear_cache("chaos")
    assert not (tmp_path / "env-cache" / "preprocessed" / "chaos").exists()


def test_cache_partial_names_are_unique_across_hosts_and_first_writer_wins(tmp_path):
    first, second = partial_name("case-1"), partial_name("case-1")
    assert first != second  # same host, same pid: the random token differs
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())
    assert first.startswith(f"case-1.partial-{host[:40]}-{os.getpid()}-")
    cache = CaseCache(tmp_path, {"size": 8})
    folder = cache.case_folder("case-1", [])
    cache.write(folder, {"image": np.zeros(2)}, {"who": "first"})
    cache.write(folder, {"image": np.ones(2)}, {"who": "second"})
    assert cache.read_meta(folder)["who"] == "first"
    assert np.array_equal(cache.array(folder, "image"), np.zeros(2))
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no partial folder left
