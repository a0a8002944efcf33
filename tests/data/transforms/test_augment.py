"""Augmentation keeps image and mask aligned: the mask drawn from the image
(a threshold) equals the threshold of the augmented image."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

import data
from data.presets import Augment3D

THRESHOLD = 0.5


def smooth_field(shape, seed):
    field = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 3.0)
    return ((field - field.min()) / (field.max() - field.min())).astype(np.float32)


def with_coverage(image):
    """Append a channel of ones: after augmentation it shows where the image is defined."""
    return np.concatenate([image, np.ones_like(image[:1])])


def agreement(image, coverage, mask, margin=0.08):
    """Share of pixels where mask == (image > threshold), away from the threshold and from
    the zero fill that rotation brings in at the borders (interpolation mixes it in there)."""
    inside = ndimage.binary_erosion(coverage > 0.999)
    decided = (np.abs(image - THRESHOLD) > margin) & inside
    return np.mean((mask > 0)[decided] == (image > THRESHOLD)[decided]), decided.mean()


@pytest.mark.parametrize("name", ["dsb2018", "chaos", "promise12"])
def test_2d_pipelines_move_image_and_mask_together(name):
    settings = dataclasses.replace(data.get_preset(name).augment_2d, affine_prob=1.0, cutout=0)
    pipeline = data.build_augment_2d(settings, seed=0)
    channels = data.get_preset(name).in_channels
    moved = 0
    for seed in range(8):
        image = np.repeat(smooth_field((64, 64), seed)[None], channels, axis=0)
        mask = (image[0] > THRESHOLD).astype(np.uint8)
        out_image, out_mask = data.apply_augment_2d(pipeline, with_coverage(image), mask)
        assert out_image.shape == (channels + 1, 64, 64) and out_mask.shape == mask.shape
        share, decided = agreement(out_image[0], out_image[-1], out_mask)
        assert share == 1.0 and decided > 0.4
        moved += not np.array_equal(out_mask, mask)
    assert moved >= 6  # the pipeline really transformed most samples


def test_cutout_blanks_a_16_pixel_square_of_the_image_only():
    pipeline = data.build_augment_2d(data.get_preset("dsb2018").augment_2d, seed=1)
    image = np.ones((3, 64, 64), np.float32)
    mask = np.ones((64, 64), np.uint8)
    out_image, out_mask = data.apply_augment_2d(pipeline, image, mask)
    hole = out_image[0] == 0
    # Rotation may also zero a few corner pixels of the image and mask alike.
    assert (hole & (out_mask == 1)).sum() == 16 * 16


@pytest.mark.parametrize("as_tensor", [False, True])
def test_3d_augmentation_keeps_label_aligned(as_tensor):
    settings = Augment3D(crop_size=(24, 24, 24), rotate_prob=1.0, intensity_shift=0.0, intensity_scale=(1.0, 1.0))
    augment = data.RandomAugment3D(settings)
    rng = np.random.default_rng(0)
    for seed in range(4):
        image = with_coverage(smooth_field((32, 30, 28), seed)[None])
        label = (image[0] > THRESHOLD).astype(np.uint8)
        if as_tensor:
            image, label = torch.from_numpy(image), torch.from_numpy(label)
        out_image, out_label = augment(image, label, rng)
        assert type(out_image) is type(image) and type(out_label) is type(label)
        assert tuple(out_image.shape) == (2, 24, 24, 24) and tuple(out_label.shape) == (24, 24, 24)
        out_image = np.asarray(out_image)
        share, decided = agreement(out_image[0], out_image[1], np.asarray(out_label))
        assert share == 1.0 and decided > 0.4


def test_rotation_in_each_plane_is_a_rotation_of_voxels():
    image = np.zeros((1, 21, 21, 21), np.float32)
    image[0, 10, 10, 15] = 1.0  # a point 5 voxels off-centre along W
    for plane, moved_axis in (((1, 2), 1), ((0, 2), 0)):
        rotated, _ = data.rotate(image, None, plane, np.pi / 2)
        peak = np.unravel_index(np.argmax(rotated[0]), rotated[0].shape)
        assert abs(peak[moved_axis] - 10) == 5 and peak[2] == 10


def test_crop_pads_small_volumes_and_prefers_foreground():
    image = np.ones((1, 10, 40, 40), np.float32)
    label = np.zeros((10, 40, 40), np.uint8)
    label[5, 35, 35] = 4
    rng = np.random.default_rng(0)
    start = data.crop_start(image.shape[1:], (16, 8, 8), rng, np.argwhere(label), foreground_prob=1.0)
    cropped, cropped_label = data.crop(image, label, start, (16, 8, 8))
    assert cropped.shape == (1, 16, 8, 8) and cropped_label.max() == 4
    assert cropped[0, 0].sum() == 0 and cropped[0, 3].sum() == 64  # padded at the borders, centred


def test_intensity_jitter_keeps_background_and_is_per_channel():
    rng = np.random.default_rng(0)
    image = np.zeros((4, 8, 8, 8), np.float32)
    image[:, 2:6, 2:6, 2:6] = np.random.default_rng(1).standard_normal((4, 4, 4, 4))
    out = data.random_intensity(image, rng)
    assert np.all(out[image == 0] == 0)
    ratios = [np.polyfit(image[c][image[c] != 0], out[c][image[c] != 0], 1)[0] for c in range(4)]
    assert all(0.9 <= r <= 1.1 for r in ratios) and len(set(np.round(ratios, 6))) == 4
