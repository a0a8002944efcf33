"""Data for lwnas: readers for BraTS, DSB2018, CHAOS and PROMISE12 in their
released layouts and for users' own data in the nnU-Net v2 raw or Decathlon
layout (`nnunet`), preprocessing with an on-disk cache, 2D/3D augmentation,
case-level splits, data set fingerprints, bundled sample data and a dataset
checker; new images read for a trained network and its predictions written back.
One registry (`data.sources`) says per data set how it is trained on and how its
new images are read; the layout: docs/data.md, "Where the code is".

Stands alone: numpy, torch, nibabel, SimpleITK, pillow, pydicom,
albumentations, scipy, pandas and tqdm only; no other project package.
"""

from data.brats import (
    BRATS_REGIONS,
    ENHANCING_LABEL,
    ET_THRESHOLD,
    MODALITIES,
    brats_case_files,
    brats_index_to_labels,
    brats_labels_to_index,
    brats_labels_to_regions,
    brats_regions,
    find_brats_cases,
    read_brats_case,
    read_brats_label,
)
from data.cache import cache_root, clear_cache
from data.chaos import find_chaos_cases, preprocess_chaos_case, read_chaos_case
from data.datasets import CaseDataset, SliceDataset, VolumeDataset
from data.dsb2018 import find_dsb2018_cases, preprocess_dsb2018_case, read_dsb2018_case
from data.errors import DataError
from data.factory import DatasetFacts, dataset_facts, default_splits, get_dataset
from data.io.images import ENDINGS, read_image_file, write_like, write_nifti_geometry
from data.io.nifti import write_nifti_like
from data.nnunet.fingerprint import plan_2d_size
from data.nnunet.prepare import LabelTargets, prepare_nnunet_case, regions_to_labels, volume_from_slices
from data.nnunet.reader import find_nnunet_cases, inspect_nnunet_case, read_nnunet_case
from data.nnunet.spec import NnunetSpec, read_dataset_json
from data.prediction.brats import (
    brats_probabilities_to_labels,
    brats_regions_to_labels,
    release_labels,
    remove_small_enhancing_tumour,
)
from data.prediction.describe import check_preprocessing, describe_dataset, jsonable, label_spec, preprocessing_spec
from data.prediction.inputs import (
    PredictionInput,
    find_prediction_inputs,
    input_formats,
    read_prediction_input,
    read_prediction_label,
)
from data.prediction.label_maps import (
    check_label_map,
    output_channels,
    paint_regions,
    probabilities_to_labels,
    probability_names,
)
from data.prediction.outputs import in_output_order, write_prediction, write_probabilities
from data.presets import PRESETS, get_preset, list_datasets
from data.promise12 import find_promise12_cases, preprocess_promise12_case, read_promise12_case
from data.sample import is_sample, sample_root, write_sample
from data.sources import ROOT_SOURCES, extract_fingerprint
from data.splits import (
    fold_splits,
    load_splits,
    make_folds,
    make_splits,
    save_splits,
    splits_text,
    with_folds,
    without_cases,
)
from data.transforms.augment2d import apply_augment_2d, build_augment_2d
from data.transforms.augment3d import (
    RandomAugment3D,
    crop,
    crop_start,
    random_flip,
    random_intensity,
    random_rotate,
    rotate,
)
from data.transforms.intensity import scale_percentiles, window, zscore_nonzero
from data.transforms.resize import restore_original_size, restore_probabilities


def __getattr__(name: str):
    # Imported on first use: `python -m data.check` must find data.check not
    # yet imported, and `import data` need not load pandas.
    if name in ("check_dataset", "CheckReport", "verify_dataset"):
        from data import check

        return getattr(check, name)
    raise AttributeError(f"module 'data' has no attribute {name!r}")


__all__ = [
    "BRATS_REGIONS", "DatasetFacts", "ROOT_SOURCES", "ENDINGS", "ENHANCING_LABEL", "ET_THRESHOLD", "MODALITIES",
    "PRESETS",
    "CaseDataset", "CheckReport", "DataError", "LabelTargets", "NnunetSpec", "RandomAugment3D", "SliceDataset",
    "VolumeDataset", "extract_fingerprint", "find_nnunet_cases", "inspect_nnunet_case", "plan_2d_size",
    "prepare_nnunet_case", "read_dataset_json", "read_image_file", "read_nnunet_case", "regions_to_labels",
    "verify_dataset", "volume_from_slices", "write_like",
    "apply_augment_2d", "brats_case_files", "brats_index_to_labels", "brats_labels_to_index",
    "brats_labels_to_regions", "brats_probabilities_to_labels", "brats_regions",
    "brats_regions_to_labels", "build_augment_2d", "cache_root", "check_dataset", "clear_cache",
    "crop", "crop_start", "find_brats_cases", "find_chaos_cases", "find_dsb2018_cases", "find_promise12_cases",
    "dataset_facts", "default_splits", "fold_splits", "get_dataset", "get_preset", "is_sample", "list_datasets",
    "load_splits",
    "make_folds", "make_splits", "with_folds",
    "preprocess_chaos_case", "preprocess_dsb2018_case", "preprocess_promise12_case", "random_flip",
    "random_intensity", "random_rotate", "read_brats_case", "read_brats_label", "read_chaos_case", "read_dsb2018_case",
    "read_promise12_case", "release_labels", "remove_small_enhancing_tumour", "restore_original_size", "rotate",
    "sample_root", "save_splits", "scale_percentiles", "splits_text", "without_cases",
    "window", "write_nifti_like", "write_sample", "zscore_nonzero",
    "PredictionInput", "check_label_map", "check_preprocessing", "describe_dataset", "find_prediction_inputs",
    "in_output_order",
    "input_formats", "jsonable", "label_spec", "output_channels", "paint_regions", "preprocessing_spec",
    "probabilities_to_labels",
    "probability_names", "read_prediction_input", "read_prediction_label", "restore_probabilities",
    "write_nifti_geometry", "write_prediction", "write_probabilities",
]
