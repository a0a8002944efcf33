"""Serving nnU-Net v2 / Decathlon cases: intensity normalisation per channel (nnU-Net's scheme
chosen by the channel's name), 2D slices cut along the coarsest axis and resized in-plane, the
served targets, and the plan made from the training cases' fingerprint (CT statistics, 2D size).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data.errors import data_error
from data.interfaces import Source
from data.nnunet.fingerprint import cached_fingerprint, plan_2d_size
from data.nnunet.reader import read_nnunet_case
from data.nnunet.spec import NnunetSpec
from data.prediction.label_maps import THRESHOLD, paint_regions
from data.transforms.resize import resize_images, resize_labels, resized_affine

# nnU-Net's channel names that select a normalisation (compared casefolded); any other name
# is z-scored per image.
NORMALISATIONS = {"ct": "ct", "nonorm": "none", "zscore": "zscore", "rescale_to_0_1": "rescale",
                  "rgb_to_0_1": "rgb"}
# Keeps flat channels (a constant image) finite.
_EPSILON = 1e-8


def normalisation_of(channel: str) -> str:
    """The scheme of a channel name: "ct", "none", "rescale", "rgb" or "zscore"."""
    return NORMALISATIONS.get(channel.casefold(), "zscore")


def normalise(image: np.ndarray, channels: tuple[str, ...], ct_intensities: dict[str, list[float]]) -> np.ndarray:
    """Per channel of (C, *spatial): CT clipped to the training set's foreground 0.5/99.5
    percentiles and scaled by its foreground mean/std (`ct_intensities[str(c)]` = [low, high,
    mean, std]); z-score per image otherwise (nnU-Net's CT and ZScore normalisations)."""
    out = np.empty(image.shape, dtype=np.float32)
    for channel, (values, name) in enumerate(zip(image, channels)):
        scheme = normalisation_of(name)
        if scheme == "ct":
            low, high, mean, std = ct_intensities[str(channel)]
            out[channel] = (np.clip(values, low, high) - mean) / max(std, _EPSILON)
        elif scheme == "zscore":
            out[channel] = (values - values.mean()) / max(float(values.std()), _EPSILON)
        elif scheme == "rescale":
            out[channel] = (values - values.min()) / max(float(values.max() - values.min()), _EPSILON)
        elif scheme == "rgb":
            out[channel] = values / 255.0
        else:
            out[channel] = values
    return out


def prepare_nnunet_case(spec: NnunetSpec, case: str, options: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read, normalise and lay out one case for the cache.

    spatial_dims 3: image (C, *spatial), label (*spatial), meta as read. 2D image files:
    (1, C, size, size), (1, size, size). Volumes served as 2D: (S, C, size, size), (S, size,
    size), the S slices cut along the coarsest axis; meta in that served order (spacing,
    affine, original_shape) with `axes` (the served order of the read axes: the prediction
    stack goes back with `volume_from_slices`).
    """
    image, label, meta = read_nnunet_case(spec, case)
    return prepare_nnunet_arrays(image, label, meta, spec.channels, options)


def prepare_nnunet_arrays(image: np.ndarray, label: np.ndarray | None, meta: dict, channels: tuple[str, ...],
                          options: dict) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """`prepare_nnunet_case` on arrays as read (image (C, *spatial), label (*spatial) or None for an
    image to predict; meta with spacing, affine and, for volumes, slice_axis): what the network
    sees in training and prediction alike."""
    image = normalise(image, channels, options.get("ct_intensities", {}))
    meta = dict(meta)
    if options["spatial_dims"] == 3:
        return image, label, meta
    size = int(options["image_size"])
    spacing = np.asarray(meta["spacing"], dtype=np.float64)
    spatial = image.shape[1:]
    if len(spatial) == 2:
        image = image[None]
        label = None if label is None else label[None]
        axes = [0, 1]
        affine = np.asarray(meta["affine"])
    else:
        axis = meta["slice_axis"]
        axes = [axis] + [a for a in range(3) if a != axis]
        image = np.moveaxis(image, axis + 1, 0)
        label = None if label is None else np.moveaxis(label, axis, 0)
        spacing = spacing[axes]
        affine = np.asarray(meta["affine"])[:, axes + [3]]
    served = image.shape[:1] + image.shape[2:]  # (S, H0, W0)
    in_plane = served[1:]
    scale = np.ones(len(spacing))
    scale[-2:] = np.asarray(in_plane) / size
    meta.update({
        "original_spacing": meta["spacing"],
        # (slice, row, column) or 2D (row, column), of the resized grid
        "spacing": spacing * scale,
        "affine": resized_affine(affine, in_plane, size),
        # slices: (S, H0, W0) in the served order; 2D images: (H0, W0), as the other readers
        "original_shape": np.asarray(served if len(axes) == 3 else in_plane, dtype=np.int64),
        "axes": axes,
    })
    image = resize_images(np.ascontiguousarray(image), size)
    return image, None if label is None else resize_labels(np.ascontiguousarray(label), size), meta


def volume_from_slices(stack: np.ndarray, meta: dict) -> np.ndarray:
    """A served stack (S, H0, W0) (predictions restored to `original_shape`) back in the read
    axis order, ready for `data.write_like(volume, meta["source"], out)`."""
    return np.transpose(np.asarray(stack), np.argsort(np.asarray(meta["axes"])))


@dataclass(frozen=True)
class LabelTargets:
    """The served target of a label map (*spatial) (a plain class, so loader workers can pickle it).

    "binary": float32 (1, *spatial), the one foreground label; "index": int64 (*spatial) class
    indices (= label values, consecutive from 0); "regions": float32 (R, *spatial), one sigmoid
    channel per region of dataset.json, in its order.
    """

    kind: str
    regions: tuple[tuple[int, ...], ...] = ()

    def __call__(self, label: np.ndarray) -> torch.Tensor:
        label = np.asarray(label)
        if self.kind == "binary":
            return torch.from_numpy((label == 1).astype(np.float32)[None])
        if self.kind == "index":
            return torch.from_numpy(label.astype(np.int64))
        return torch.from_numpy(np.stack([np.isin(label, values) for values in self.regions]).astype(np.float32))


def label_targets(spec: NnunetSpec) -> LabelTargets:
    if spec.has_regions:
        return LabelTargets("regions", tuple(spec.foreground.values()))
    return LabelTargets("binary" if spec.num_classes == 1 else "index")


def regions_to_labels(regions: np.ndarray, spec: NnunetSpec, threshold: float = THRESHOLD) -> np.ndarray:
    """Region channels (R, ...) (probabilities or masks) -> uint8 label values, painting region r with
    regions_class_order[r] in order, later regions over earlier ones (nnU-Net's conversion): the
    inverse of the "regions" `LabelTargets`."""
    return paint_regions(np.asarray(regions), spec.regions_class_order, threshold)


def plan_nnunet(spec: NnunetSpec, source: Source, case_paths: dict[str, Path], options: dict, folder: Path,
                skip_bad: bool = False) -> dict:
    """`options` with what the training cases decide: `ct_intensities` for CT channels and, for 2D
    items without a given image_size, the planned `image_size` (from their cached fingerprint),
    and the `fingerprint` itself (taken off the options by `get_dataset`)."""
    ct_channels = [c for c, name in enumerate(spec.channels) if normalisation_of(name) == "ct"]
    plan_size = source.kind != "volumes" and options.get("image_size") is None
    if not case_paths:
        raise data_error(spec.root, "no training case to plan from; expected at least one case in the train split")
    # always extracted (and cached): the run records it as fingerprint.json
    fingerprint = cached_fingerprint(source, case_paths, options, Path(folder) / "fingerprints", skip_bad)
    options = dict(options, fingerprint=fingerprint)
    properties = fingerprint["foreground_intensity_properties_per_channel"]
    if ct_channels:
        if not properties[str(ct_channels[0])]["samples"]:
            raise data_error(spec.root, "no foreground voxel in the training cases; expected labelled cases "
                             "(CT normalisation uses their foreground intensities)")
        options["ct_intensities"] = {str(c): [properties[str(c)][key] for key in
                                              ("percentile_00_5", "percentile_99_5", "mean", "std")]
                                     for c in ct_channels}
    if plan_size:
        options["image_size"] = plan_2d_size(fingerprint)
    return options
