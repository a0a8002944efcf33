"""DSB2018 (Kaggle Data Science Bowl nuclei) readers: one RGB(A) image per
case and one binary PNG per nucleus, merged into a single foreground mask; new
images (PNG, TIFF, BMP files or a DSB2018 tree) read for a trained network
(`DSB2018_INPUTS`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from data.errors import checked_labels, data_error, require_data_root
from data.interfaces import InputReader, PredictionInput
from data.io.images import PLANAR_ENDINGS, ending_of, listed_files, stem_of, unit_range
from data.io.png import read_png
from data.transforms.intensity import standardise
from data.transforms.resize import resize_images, resize_labels, resized_affine

_LAYOUTS = "stage1_train/<id>/images/<id>.png with stage1_train/<id>/masks/*.png, or <id>/images/<id>.png"
# The label map of a case: the union of the nuclei is label 1.
LABEL_NAMES = ("background", "nucleus")


def find_dsb2018_cases(root: str | os.PathLike) -> list[Path]:
    """Case folders (`<id>/` holding `images/<id>.png`), sorted by id."""
    root = require_data_root(root)
    for parent in (root / "stage1_train", root):
        if parent.is_dir():
            cases = [d for d in parent.iterdir() if (d / "images").is_dir()]
            if cases:
                return sorted(cases, key=lambda d: d.name)
    raise data_error(root, f"no DSB2018 cases found; looked for {_LAYOUTS}")


def read_dsb2018_case(case_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read one case: image (3, H, W) float32 in [0, 1], label (H, W) uint8 union of nuclei, meta.

    RGBA keeps its first three channels; grey images are repeated to RGB (the
    seed converts black-and-white images to three equal channels).
    """
    case_dir = Path(case_dir)
    image_path = case_dir / "images" / f"{case_dir.name}.png"
    if not image_path.is_file():
        raise data_error(case_dir, f"missing images/{image_path.name}; expected the case's image")
    image = read_dsb2018_image(image_path)
    label = read_dsb2018_masks(case_dir, image.shape[1:])
    height, width = label.shape
    meta = {
        "spacing": np.ones(2),
        "affine": np.eye(4),
        "original_shape": np.array([height, width], dtype=np.int64),
        "source": str(image_path),
    }
    return image, label.astype(np.uint8), meta


def read_dsb2018_masks(case_dir: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """The label (H, W) uint8 of a case: the union of its `masks/*.png` (one nucleus per file)."""
    case_dir = Path(case_dir)
    mask_paths = sorted((case_dir / "masks").glob("*.png"))
    if not mask_paths:
        raise data_error(case_dir, "no PNGs in masks/; expected one 0/255 PNG per nucleus")
    label = np.zeros(tuple(shape), dtype=bool)
    for mask_path in mask_paths:
        mask = read_png(mask_path)
        if mask.ndim == 3:
            mask = mask[..., 0]
        if mask.shape != label.shape:
            raise data_error(mask_path, f"mask shape {mask.shape} differs from images/{case_dir.name}.png "
                             f"{label.shape}; expected image and masks of one size")
        # Nuclei overlap in places; the union keeps every pixel any mask marks.
        label |= checked_labels(mask_path, mask, {0, 1, 255}, "0 and 255 (one nucleus per file)") > 0
    return label.astype(np.uint8)


def read_dsb2018_image(path: str | os.PathLike) -> np.ndarray:
    """One image file as the cases serve it: (3, H, W) float32 in [0, 1] (grey repeated to RGB,
    alpha dropped, `UNIT_RANGE_RULE`: a float image outside [0, 1] is refused). Reads PNG, TIFF
    and BMP."""
    return _to_rgb(Path(path), read_png(path))


def preprocess_dsb2018_image(image: np.ndarray, image_size: int) -> np.ndarray:
    """An image of `read_dsb2018_image` resized to (3, image_size, image_size): what the network sees
    (training and prediction alike)."""
    return resize_images(image[None], image_size)[0]


def preprocess_dsb2018_case(case_dir: str | os.PathLike, image_size: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read and resize to image_size^2: image (3, size, size) float32, label (size, size) uint8, meta."""
    image, label, meta = read_dsb2018_case(case_dir)
    height, width = label.shape
    meta = dict(meta)
    meta["spacing"] = np.array([height / image_size, width / image_size])
    meta["affine"] = resized_affine(np.eye(4), (height, width), image_size)
    return preprocess_dsb2018_image(image, image_size), resize_labels(label[None], image_size)[0], meta


def _to_rgb(path: Path, pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    channels = pixels.shape[-1]
    if channels in (1, 2):  # grey, or grey + alpha
        pixels = np.repeat(pixels[..., :1], 3, axis=-1)
    elif channels in (3, 4):
        pixels = pixels[..., :3]
    else:
        raise data_error(path, f"{channels} channels; expected a grey, RGB or RGBA PNG")
    return np.ascontiguousarray(np.moveaxis(unit_range(path, pixels), -1, 0))


# -- new images for a trained network ----------------------------------------------------------


def _image_item(path: Path) -> PredictionInput:
    return PredictionInput(stem_of(path), (path,), f"{stem_of(path)}{ending_of(path)}")


def _tree_items(path: Path) -> list[PredictionInput]:
    """The cases of a DSB2018 tree at `path` (a case, or a folder of cases, also under
    `stage1_test/` or `stage1_train/`), with their masks where they have some."""
    def case_of(folder: Path) -> Path | None:
        image = folder / "images" / f"{folder.name}.png"
        return image if image.is_file() else None

    if case_of(path) is not None:
        cases = [path]
    else:
        cases = []
        for parent in (path, path / "stage1_test", path / "stage1_train"):
            if parent.is_dir():
                cases = sorted((d for d in parent.iterdir() if d.is_dir() and case_of(d) is not None),
                               key=lambda d: d.name)
                if cases:
                    break
    return [PredictionInput(case.name, (case_of(case),), f"{case.name}.png",
                            label=case / "masks" if _has_masks(case) else None) for case in cases]


def _has_masks(case: Path) -> bool:
    masks = case / "masks"
    return masks.is_dir() and any(masks.glob("*.png"))


def _find_inputs(path: Path, preprocessing: dict) -> list[PredictionInput]:
    if path.is_file():
        return [_image_item(path)] if ending_of(path) in PLANAR_ENDINGS else []
    return _tree_items(path) or [_image_item(file) for file in listed_files(path, PLANAR_ENDINGS)]


def _read_input(item: PredictionInput, preprocessing: dict) -> tuple[np.ndarray, dict]:
    image = read_dsb2018_image(item.source)
    stack = preprocess_dsb2018_image(image, preprocessing["image_size"])[None]
    return standardise(stack, preprocessing["mean"], preprocessing["std"]), {
        "served_shape": [1, *image.shape[1:]], "to_output": "first", "spacing": [1.0, 1.0],
        "reference": str(item.source)}


def _read_input_label(item: PredictionInput, preprocessing: dict, meta: dict) -> np.ndarray:
    return read_dsb2018_masks(item.label.parent, tuple(meta["served_shape"][1:]))


DSB2018_INPUTS = InputReader("images", _find_inputs, _read_input, _read_input_label,
                             lambda preprocessing: "PNG/TIFF/BMP files, or a DSB2018 tree <id>/images/<id>.png")
