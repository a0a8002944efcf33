"""The presets are data, one source of every default: each registered 3D network's training
settings fit its output, the documented table is the presets, and commands start from a preset
and override only what a user set (None = unset)."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import data
import models
from nas import losses, presets
from nas.search import SearchConfig


def test_every_registered_network_has_a_preset_whose_loss_fits_its_output():
    assert set(presets.MODEL_PRESETS) == set(models.list_models())
    for name in models.list_models():
        preset = presets.model_preset(name)
        kwargs = presets.network_kwargs(name, preset.crop_size)
        with torch.device("meta"):
            network = models.build(name, **kwargs)
        target = presets.TRAINING_TARGETS[network.output_activation]
        labels = np.zeros((2, 8, 8, 8), np.uint8)
        labels[:, 2:6, 2:6, 2:6], labels[:, 3:5, 3:5, 3:5] = 2, 4
        label = (torch.from_numpy(data.brats_labels_to_index(labels)) if target == "index" else
                 torch.from_numpy(np.stack([data.brats_labels_to_regions(x) for x in labels])))
        logits = torch.randn(2, network.num_classes, 8, 8, 8, requires_grad=True)
        value = losses.build(preset.loss, **preset.loss_options)(logits, label)
        value.backward()
        assert torch.isfinite(value) and logits.grad.abs().sum() > 0, name
    vae = presets.model_preset("vae_unet")
    assert (vae.lr, vae.batch_size, vae.epochs, vae.crop_size) == (1e-4, 1, 300,
                                                                   (160, 192, 128))
    assert presets.network_kwargs("vae_unet", (32, 48, 32))["input_size"] == (32, 48, 32)
    assert presets.training_values("mfsnet", {"lr": None, "epochs": 3}) == {
        "epochs": 3, "lr": 1e-3, "batch_size": 8, "weight_decay": 1e-5, "optimizer": "adam",
        "scheduler": "poly", "loss": "mixed_dice_jaccard", "loss_options": {}}
    with pytest.raises(ValueError, match="mfsnet"):
        presets.model_preset("mfsnt")


def test_documented_defaults_are_the_presets():
    docs = (Path(__file__).resolve().parents[3] / "docs" / "brats.md").read_text()
    assert presets.defaults_table() in docs


def test_unset_overrides_keep_the_preset():
    preset = presets.search_preset("dsb2018")
    merged = presets.merge(preset, {"epochs": None, "channels": 8})
    assert merged["epochs"] == preset.epochs and merged["channels"] == 8
    with pytest.raises(ValueError, match="no search preset for dataset 'brast'"):
        presets.search_preset("brast")


def test_a_search_config_declares_no_preset_field_again():
    preset_fields = [field.name for field in dataclasses.fields(presets.SearchPreset)]
    config_fields = [field.name for field in dataclasses.fields(SearchConfig)]
    assert config_fields[:len(preset_fields)] == preset_fields  # inherited, in the preset's order
    assert len(set(config_fields)) == len(config_fields)
    config = SearchConfig.from_preset("chaos", image_size=32)
    assert {name: getattr(config, name) for name in preset_fields} == dataclasses.asdict(
        presets.search_preset("chaos"))


def test_a_data_set_of_the_users_starts_from_the_closest_seed_preset():
    assert presets.closest_seed_dataset(("R", "G", "B"), planar=True) == "dsb2018"
    assert presets.closest_seed_dataset(("CT",), planar=False) == "chaos"
    assert presets.closest_seed_dataset(("T2",), planar=False) == "promise12"
    assert presets.closest_seed_dataset(("CT", "PET"), planar=False, spatial_dims=3) == "brats"


def test_the_volume_budget_scales_with_the_crop():
    volume = presets.VOLUME_SEARCH_PRESETS["brats"]
    assert volume.budget_flops_g(20.0, volume.budget_size) == 20.0
    assert volume.budget_flops_g(20.0, (64, 64, 64)) == pytest.approx(20.0 / 8)
