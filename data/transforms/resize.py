"""In-plane resizing of 2D images and slice stacks, its inverse for
predictions, and the matching update of the voxel-to-world affine."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# What `resize_images` and `resize_labels` do to a 2D item, in words (a checkpoint's description
# of its preprocessing, for people).
RESIZE_DESCRIPTION = "resized to image_size x image_size (bilinear, antialiased; labels nearest)"


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize (N, C, H, W) float images to (N, C, size, size), bilinear with antialiasing."""
    if images.shape[-2:] == (size, size):
        return images.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    # antialias makes 512 -> 256 average the four source pixels instead of
    # sampling one, which keeps thin structures and noise levels faithful.
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized.numpy()


def resize_labels(labels: np.ndarray, size: int) -> np.ndarray:
    """Resize (N, H, W) integer label maps to (N, size, size), nearest neighbour."""
    if labels.shape[-2:] == (size, size):
        return labels
    tensor = torch.from_numpy(np.ascontiguousarray(labels)).unsqueeze(1).float()
    # "nearest-exact" samples at pixel centres, matching the bilinear grid above;
    # plain "nearest" shifts by half a pixel.
    resized = F.interpolate(tensor, size=(size, size), mode="nearest-exact")
    return resized.squeeze(1).numpy().astype(labels.dtype)


def restore_original_size(
    prediction: np.ndarray | torch.Tensor, original_shape: np.ndarray | tuple[int, ...]
) -> np.ndarray | torch.Tensor:
    """Resize a 2D prediction (..., H, W) back to `meta["original_shape"]` (H0, W0), nearest neighbour.

    Inverse of the preprocessing resize for label maps: the grids of both
    share their outer edges, so the result lies on the source image's pixels.
    """
    height, width = (int(v) for v in np.asarray(original_shape).ravel()[-2:])
    is_numpy = not isinstance(prediction, torch.Tensor)
    tensor = torch.as_tensor(np.asarray(prediction) if is_numpy else prediction)
    if tuple(tensor.shape[-2:]) == (height, width):
        return prediction
    dtype = tensor.dtype
    lead = tensor.shape[:-2]
    flat = tensor.reshape(1, -1, *tensor.shape[-2:]).float()
    out = F.interpolate(flat, size=(height, width), mode="nearest-exact").reshape(*lead, height, width).to(dtype)
    return out.numpy() if is_numpy else out


def resized_affine(affine: np.ndarray, in_plane_shape: tuple[int, int], size: int) -> np.ndarray:
    """Affine of a (slice, row, column) grid after resizing rows and columns to `size`.

    With pixel-centre sampling, new index i sits at old index (i + 0.5) * s - 0.5
    where s = old / new.
    """
    scales = [old / size for old in in_plane_shape]
    index_map = np.eye(4)
    for axis, scale in zip((1, 2), scales):
        index_map[axis, axis] = scale
        index_map[axis, 3] = 0.5 * scale - 0.5
    return np.asarray(affine, dtype=np.float64) @ index_map


def restore_probabilities(
    probabilities: np.ndarray | torch.Tensor, original_shape: np.ndarray | tuple[int, ...]
) -> np.ndarray | torch.Tensor:
    """Resize probability maps (N, K, h, w) back to `original_shape` (..., H0, W0), bilinear on the
    pixel-centre grid the preprocessing resize used (its inverse for maps, before they become labels)."""
    height, width = (int(v) for v in np.asarray(original_shape).ravel()[-2:])
    is_numpy = not isinstance(probabilities, torch.Tensor)
    tensor = torch.as_tensor(np.asarray(probabilities) if is_numpy else probabilities).float()
    if tuple(tensor.shape[-2:]) != (height, width):
        tensor = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)
    return tensor.numpy() if is_numpy else tensor
