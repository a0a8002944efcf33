"""2D augmentation: albumentations pipelines applied to image and mask together."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from data.presets import Augment2D

if TYPE_CHECKING:  # imported where a pipeline is built: `import data` needs no albumentations
    import albumentations as A

# OpenCV flag values, named here so that this package needs no cv2 import.
_INTER_NEAREST = 0
_INTER_LINEAR = 1
_BORDER_CONSTANT = 0


def build_augment_2d(settings: Augment2D, seed: int | None = None) -> A.Compose:
    """Flips, rotation + scaling, and optional cutout, from a preset's settings.

    Geometric steps move image (bilinear) and mask (nearest) together; cutout
    blanks the image only, leaving the mask as the target to recover.
    """
    import albumentations as A
    steps: list = []
    if settings.horizontal_flip > 0:
        steps.append(A.HorizontalFlip(p=settings.horizontal_flip))
    if settings.vertical_flip > 0:
        steps.append(A.VerticalFlip(p=settings.vertical_flip))
    if settings.affine_prob > 0 and (settings.rotate_degrees > 0 or settings.scale != (1.0, 1.0)):
        steps.append(A.Affine(
            rotate=(-settings.rotate_degrees, settings.rotate_degrees),
            scale=settings.scale,
            interpolation=_INTER_LINEAR,
            mask_interpolation=_INTER_NEAREST,
            border_mode=_BORDER_CONSTANT,
            fill=0,
            fill_mask=0,
            p=settings.affine_prob,
        ))
    if settings.cutout > 0:
        side = (settings.cutout, settings.cutout)
        steps.append(A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=side, hole_width_range=side,
                                     fill=0, p=1.0))
    return A.Compose(steps, seed=seed)


def apply_augment_2d(pipeline: A.Compose, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Augment a channels-first image (C, H, W) and its mask (H, W); returns the same layouts."""
    out = pipeline(image=np.ascontiguousarray(np.moveaxis(image, 0, -1)), mask=np.ascontiguousarray(mask))
    return np.ascontiguousarray(np.moveaxis(out["image"], -1, 0)), out["mask"]
