"""Reliability: no silent wrong result, no poisoned run directory, every setting checked before
any data is read. One test (or a few) per reproduced failure; the item numbers are the
reliability issue's."""
import json
import multiprocessing
import os
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist

import data
from data.io.png import read_png, write_png
from data.sample.brats import write_brats
from nas.run.data_setup import prepare_splits
from nas.search import SearchConfig, run_search
from nas.train import DistributedContext, EpochSchedule, evaluate_segmentation, run_retrain
from nas.train.run_dir import run_directory
from nas.train.runtime import NonFiniteLossError, check_finite, start_epoch_randomness
from supernet import drop_path, from_genotype
from tests.synthetic import SquaresDataset, retrain_config

CPU = DistributedContext()


def _search_config(**overrides):
    values = dict(layout="1/0/1", epochs=3, channels=4, image_size=16, batch_size=2,
                  num_workers=0, progress=False, drop_path=0.0, arch_lr=0.01)
    return SearchConfig.from_preset("dsb2018", **{**values, **overrides})


def _with_nan_block(path, value=np.nan):
    """Rewrite a NIfTI file as float32 with a block of NaN (or inf) voxels."""
    image = nib.load(path)
    array = np.asarray(image.dataobj, dtype=np.float32)
    array[1:3, 1:3, 1:3] = value
    nib.save(nib.Nifti1Image(array, image.affine), str(path))


# 1. non-finite voxels ---------------------------------------------------------------------


def test_nan_in_one_modality_names_the_file_and_the_modality(tmp_path):
    root = write_brats(tmp_path / "brats", cases=2, shape=(8, 8, 8))
    t2 = root / "BraTS2021_00001" / "BraTS2021_00001_t2.nii.gz"
    _with_nan_block(t2)
    with pytest.raises(data.DataError) as error:
        data.read_brats_case(t2.parent)
    assert str(error.value) == (f"{t2}: modality t2 holds 8 NaN or infinite voxel(s); expected "
                                "finite intensities")
    report = data.check_dataset("brats", root, progress=False)
    assert [message for _, message in report.problems] == [str(error.value)]


def test_nan_cases_are_refused_for_training_and_validation(tmp_path):
    root = write_brats(tmp_path / "brats", cases=4, shape=(8, 8, 8))
    for case in data.find_brats_cases(root):
        _with_nan_block(next(case.glob("*_flair.nii.gz")), np.inf)
    for split in ("train", "val"):
        with pytest.raises(data.DataError, match="modality flair holds 8 NaN or infinite"):
            data.get_dataset("brats", root, split, val_fraction=0.5, crop_size=8,
                             cache_dir=tmp_path / "cache")


def test_a_non_finite_loss_without_checkpoint_says_so():
    loss = torch.tensor(float("nan"))
    with pytest.raises(NonFiniteLossError, match="no checkpoint was written yet") as error:
        check_finite(loss, 0, 3, "weight", checkpoint=None)
    assert "kept at" not in str(error.value)


# 2. stale files of an earlier start -------------------------------------------------------


def test_a_fresh_run_replaces_the_files_of_a_start_that_never_checkpointed(tmp_path, capsys):
    out = tmp_path / "run"
    first = prepare_splits("dsb2018", None, run_directory("search", "dsb2018", out, CPU, False),
                           0, 0.25, CPU, image_size=32)
    seed0 = data.load_splits(first)
    (out / "log.csv").write_text("epoch\n0\n")
    (out / "figures").mkdir()
    # the first start died here (bad flag, data error, kill in epoch 0): no checkpoint.pt
    again = run_directory("search", "dsb2018", out, CPU, False)
    assert "held splits.json, log.csv, figures of an earlier start" in capsys.readouterr().out
    assert not (out / "log.csv").exists() and not (out / "figures").exists()
    seed1 = data.load_splits(prepare_splits("dsb2018", None, again, 1, 0.25, CPU, image_size=32))
    assert seed1["seed"] == 1 and seed1 != seed0
    assert seed1 == data.get_dataset("dsb2018", None, "train", 1, image_size=32).splits


def test_a_directory_with_a_checkpoint_is_refused_and_resume_keeps_its_splits(tmp_path):
    out = tmp_path / "run"
    splits = prepare_splits("dsb2018", None, run_directory("search", "dsb2018", out, CPU, False),
                            0, 0.25, CPU, image_size=32)
    (out / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="already holds a run"):
        run_directory("search", "dsb2018", out, CPU, False)
    before = splits.read_text()
    prepare_splits("dsb2018", None, run_directory("search", "dsb2018", out, CPU, True), 1, 0.25,
                   CPU, resume=True, image_size=32)
    assert splits.read_text() == before  # --resume continues on its own cases


# 3. a changed --epochs on resume ----------------------------------------------------------


def test_the_schedule_equals_torch_cosine_and_never_rises_when_extended():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.005)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4, eta_min=1e-4)
    schedule = EpochSchedule("cosine", 0.005, 4, 1e-4)
    for epoch in range(4):
        assert schedule.lr(epoch) == pytest.approx(reference.get_last_lr()[0], rel=1e-12)
        optimizer.step()
        reference.step()
    planned = [schedule.lr(epoch) for epoch in range(4)]
    schedule.set_epochs(7, resume_epoch=4)
    rates = [schedule.lr(epoch) for epoch in range(7)]
    assert all(b <= a for a, b in zip(rates, rates[1:])), rates
    # the extension starts where training stopped (not at the finished curve's floor)
    assert rates[:4] == planned and rates[4] == planned[3] and rates[6] > 1e-4
    poly = EpochSchedule("poly", 1.0, 4)
    assert [poly.lr(e) for e in range(4)] == [(1 - e / 4) ** 0.9 for e in range(4)]
    poly.set_epochs(6, resume_epoch=2)
    rates = [poly.lr(e) for e in range(6)]
    assert all(b <= a for a, b in zip(rates, rates[1:])) and rates[2] == poly.lr(2)


def test_search_resumed_with_more_epochs_never_raises_the_learning_rate(tmp_path):
    train, val = SquaresDataset(6, seed=1), SquaresDataset(4, seed=2)
    run_search(_search_config(epochs=2), train, val, tmp_path)
    run_search(_search_config(epochs=4), train, val, tmp_path, resume=True)
    rates = pd.read_csv(tmp_path / "log.csv")["weight_lr"].tolist()
    assert len(rates) == 4 and all(b <= a for a, b in zip(rates, rates[1:])), rates
    assert rates[3] > 0  # the extension trains, at rates below the last one used


def test_retrain_resumed_with_more_epochs_never_raises_the_learning_rate(tmp_path, make_genotype):
    val = torch.utils.data.DataLoader(SquaresDataset(4, seed=2), batch_size=2)
    loss = torch.nn.BCEWithLogitsLoss()

    def train(epochs, resume):
        torch.manual_seed(0)
        model = from_genotype(make_genotype())
        config = retrain_config(epochs=epochs, batch_size=2, image_size=16)
        return run_retrain(model, config, SquaresDataset(6, seed=1), tmp_path,
                           lambda net: evaluate_segmentation(net, val, loss, CPU.device, CPU),
                           resume=resume)

    train(3, False)
    rates = [row["lr"] for row in train(6, True)["history"]]
    assert len(rates) == 6 and all(b <= a for a, b in zip(rates, rates[1:])), rates


# 4. --skip-bad ----------------------------------------------------------------------------


def test_skipped_cases_are_printed_recorded_and_counted(tmp_path, capsys):
    from nas.run import search

    root = tmp_path / "dsb"
    shutil.copytree(data.sample_root("dsb2018"), root)
    cases = data.find_dsb2018_cases(root)
    bad = cases[0] / "images" / f"{cases[0].name}.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "run"
    search("dsb2018", root, out, device="cpu", skip_bad=True, progress=False, pictures=False,
           epochs=1, layout="1/0/1", channels=4, image_size=32, num_workers=0)
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("skipped ")]
    assert len(lines) == 1 and cases[0].name in lines[0] and str(bad) in lines[0]
    skipped = json.loads((out / "skipped.json").read_text())
    assert [entry["case"] for entry in skipped] == [cases[0].name]
    splits = data.load_splits(out / "splits.json")
    assert cases[0].name not in splits["train"] + splits["val"] + splits["test"]
    assert "1 case(s) skipped (skipped.json)" in printed


def test_skip_bad_leaves_a_failing_case_of_a_users_data_set_out_instead_of_refusing_it(tmp_path, capsys):
    """The integrity gate of a user's data set (nnU-Net layout) gives way to --skip-bad: the
    failing case is skipped and listed, as on the seed data sets."""
    from nas.run import search

    root = tmp_path / "nnunet"
    shutil.copytree(data.sample_root("nnunet"), root)
    bad = sorted((root / "imagesTr").glob("*_0000.nii.gz"))[0]
    bad.write_bytes(bad.read_bytes()[:100])  # a truncated file
    case = bad.name[: -len("_0000.nii.gz")]
    with pytest.raises(data.DataError, match=f"1 problem\\(s\\) in 1 case\\(s\\) \\({case}\\)"):
        search("nnunet", root, tmp_path / "refused", device="cpu", progress=False, pictures=False,
               epochs=1, layout="1/0/1", channels=4, num_workers=0)
    out = tmp_path / "run"
    search("nnunet", root, out, device="cpu", skip_bad=True, progress=False, pictures=False,
           epochs=1, layout="1/0/1", channels=4, num_workers=0)
    assert [entry["case"] for entry in json.loads((out / "skipped.json").read_text())] == [case]
    assert "1 case(s) skipped (skipped.json)" in capsys.readouterr().out


def test_a_data_set_is_verified_once_per_process(tmp_path, monkeypatch):
    """lwnas run searches and retrains three networks on one data set: its cases are read for
    the integrity check once, not per command."""
    from nas.run import data_setup

    calls = []
    monkeypatch.setattr(data_setup, "_VERIFIED", set())
    monkeypatch.setattr(data, "verify_dataset", lambda *args, **kwargs: calls.append((args, kwargs)))
    for _ in range(3):
        data_setup.verify_data("nnunet", tmp_path, DistributedContext())
    data_setup.verify_data("nnunet", tmp_path, DistributedContext(), spatial_dims=3)  # other options
    data_setup.verify_data("nnunet", tmp_path, DistributedContext(), skip_bad=True)  # the readers skip
    assert calls == [(("nnunet", tmp_path), {}), (("nnunet", tmp_path), {"spatial_dims": 3})]


# 5. settings checked before any data is read ----------------------------------------------


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
    (["--layout", "2/3"], "--layout: layout must be encoder/middle/decoder cell counts"),
    (["--layout", "1//1"], "--layout: layout must be encoder/middle/decoder cell counts"),
    (["--layout", "0/0/0"], "--layout: layout '0/0/0': needs at least one encoder cell"),
    (["--lambda-params", "-1"], "--lambda-params must be a number >= 0, got -1.0"),
    (["--val-fraction", "1.0"], "--val-fraction must be a number >= 0 and < 1, got 1.0"),
    (["--device", "gpu"], "--device 'gpu': expected auto, cpu, cuda or cuda:N"),
    (["--drop-path", "1.0"], "--drop-path must be a number >= 0 and < 1, got 1.0"),
])
def test_bad_search_settings_fail_before_any_data_is_read(tmp_path, one_line_error, flags,
                                                          message):
    out = tmp_path / "run"
    # a data root that does not exist: reading data first would give another error
    line = one_line_error(["search", "--dataset", "dsb2018", "--data-root", tmp_path / "none",
                           "--out", out, *flags])
    assert line == f"error: {message}" or line.startswith(f"error: {message}")
    assert not out.exists()


def test_retrain_settings_and_genotype_sizes_fail_before_any_data_is_read(tmp_path,
                                                                          one_line_error,
                                                                          make_genotype):
    from nas.search import save_genotype

    path = save_genotype(tmp_path / "genotype.json", make_genotype(in_channels=3),
                         dataset="dsb2018", search={"image_size": "large"})
    common = ["retrain", "--genotype", path, "--data-root", tmp_path / "none", "--out",
              tmp_path / "run"]
    assert one_line_error(common) == (f"error: {path}: 'search.image_size' must be a positive "
                                      "integer, got 'large'")
    sized = [*common, "--image-size", "32"]  # the bad size in the file is then not used
    assert one_line_error([*sized, "--epochs", "0"]) == (
        "error: --epochs must be an integer >= 1, got 0")
    assert one_line_error([*sized, "--loss", "dise"]).startswith("error: --loss must be one of")
    assert not (tmp_path / "run").exists()


# 6. all-empty masks -----------------------------------------------------------------------


def test_cases_without_foreground_warn_and_a_split_without_any_is_an_error(tmp_path):
    root = tmp_path / "dsb"
    shutil.copytree(data.sample_root("dsb2018"), root)
    for mask in root.rglob("masks/*.png"):
        write_png(mask, np.zeros_like(read_png(mask)))  # the files stay, their pixels go
    report = data.check_dataset("dsb2018", root, progress=False)
    assert len(report.warnings) == len(data.find_dsb2018_cases(root))
    assert all("no foreground (every label is 0)" in message for _, message in report.warnings)
    assert [message for _, message in report.problems] == [
        f"{root}: no case has foreground (every label is 0); expected labelled cases"]
    with pytest.raises(data.DataError, match="no case of the val split .* has foreground"):
        data.get_dataset("dsb2018", root, "val", image_size=32, cache_dir=tmp_path / "cache")


# 7. a genotype that does not fit the data -------------------------------------------------


def test_a_dsb_genotype_on_chaos_names_both_sides_before_preprocessing(tmp_path,
                                                                       one_line_error,
                                                                       make_genotype):
    from nas.search import save_genotype

    path = save_genotype(tmp_path / "genotype.json", make_genotype(in_channels=3),
                         dataset="dsb2018")
    line = one_line_error(["retrain", "--genotype", path, "--dataset", "chaos",
                           "--data-root", tmp_path / "none", "--out", tmp_path / "run"])
    assert line == (f"error: {path}: the genotype does not fit the chaos data: it has 3 input "
                    "channel(s), the chaos data 1 (CT); retrain it on the data set it was "
                    "searched on (--dataset) or search on this one")


# 8. per-rank randomness -------------------------------------------------------------------


def _masks_on_rank(rank, tmp_path):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/rendezvous", rank=rank,
                            world_size=2)
    try:
        start_epoch_randomness(seed=7, epoch=3, loaders=(), rank=dist.get_rank())
        mask = drop_path(torch.ones(64, 1, 1, 1), 0.5, training=True).flatten()
        torch.save(mask, tmp_path / f"mask{rank}.pt")
    finally:
        dist.destroy_process_group()
    os._exit(0)


def _rank_masks(tmp_path):
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_masks_on_rank, args=(rank, tmp_path))
                 for rank in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert all(p.exitcode == 0 for p in processes)
    masks = [torch.load(tmp_path / f"mask{rank}.pt") for rank in range(2)]
    (tmp_path / "rendezvous").unlink(missing_ok=True)
    return masks


def test_ranks_draw_their_own_drop_path_masks_reproducibly(tmp_path):
    first = _rank_masks(tmp_path)
    assert not torch.equal(first[0], first[1])  # each rank its own samples' masks
    again = _rank_masks(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # fixed seed and world size


# 9, 10. the run directory -----------------------------------------------------------------


def test_an_unwritable_out_fails_in_one_line_before_anything_is_written(tmp_path,
                                                                        one_line_error):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")  # root can write anywhere else
    line = one_line_error(["search", "--dataset", "dsb2018", "--out", blocker / "run",
                           "--epochs", "1", "--data-root", tmp_path / "none"])
    assert line.startswith(f"error: {blocker / 'run'}: run directory is not writable")


def test_a_start_or_resume_removes_orphaned_temporary_files(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"x")
    orphans = [out / ".checkpoint.pt.a1b2.tmp", out / ".log.csv.c3d4.tmp",
               out / ".x.nii.gz.e5.tmp.nii.gz"]
    for orphan in orphans:
        orphan.write_bytes(b"partial")
    keep = out / "notes.txt"
    keep.write_text("mine")
    run_directory("search", "dsb2018", out, CPU, resume=True)
    assert not any(orphan.exists() for orphan in orphans) and keep.exists()


# 11. sample data over a real data set -----------------------------------------------------


def test_sample_data_refuses_a_folder_that_is_not_a_sample_set(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "Case00.mhd").write_text("a real case")
    with pytest.raises(data.DataError, match="folder is not empty and holds no promise12 sample"):
        data.write_sample("promise12", real)
    assert not (real / data.sample.MARKER).exists()
    again = data.write_sample("dsb2018", tmp_path / "sample")
    assert data.write_sample("dsb2018", again) == again  # rewriting a sample set is fine
    with pytest.raises(data.DataError):
        data.write_sample("chaos", again)  # but not another data set into it


# 13. the benchmark's reference ------------------------------------------------------------


def test_the_search_step_bench_takes_its_reference_only_from_a_named_path():
    from bench import search_step

    with pytest.raises(SystemExit, match="--reference PATH is required"):
        search_step.main(["--device", "cpu", "--size", "16", "--channels", "16", "--layout",
                          "1/0/1", "--steps", "1", "--warmup", "0", "--no-write"])
