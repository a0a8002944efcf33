"""Label maps: which label values a data set's networks predict, under which names, and how a
network's output becomes those values. One description per data set (its source adapter builds
it, `data.label_spec` reads it), stored in every checkpoint, so prediction needs nothing else.
`paint_regions` is the one rule that turns region channels back into label values.

A label map is a JSON-ready dict:

- `values`, `names`: the label values of a written prediction and their names (background first);
- `activation`: "sigmoid" or "softmax", what turns the logits into probabilities;
- `decision`: how probabilities become values:
  - "threshold" (one sigmoid channel, binary): `foreground` where the probability exceeds
    `threshold` (0.5, the same rule as logits > 0 in training);
  - "argmax" (softmax over classes): class index i becomes `values[i]`;
  - "regions" (one sigmoid channel per region, `regions`: name -> the values it unites): regions
    above `threshold` painted with `order[r]` in order, later over earlier (nnU-Net's rule), or
    with BraTS' nested order (`painting: "brats"`, `data.brats.BRATS_REGION_ORDER`).
- `png_foreground`: the grey level binary masks are written with in PNG files (255).
"""

from __future__ import annotations

from typing import Mapping, Sequence, Union

import numpy as np
import torch

from data.brats import BRATS_REGION_ORDER

DECISIONS = ("threshold", "argmax", "regions")
#: Binary masks in PNG files are 0/255, the convention of the data sets' own mask files.
PNG_FOREGROUND = 255
THRESHOLD = 0.5

ArrayLike = Union[torch.Tensor, np.ndarray]


def class_label_map(names: Sequence[str], values: Sequence[int] | None = None, num_classes: int | None = None
                    ) -> dict:
    """The label map of a network predicting `names` (background first, `values` default 0, 1, ...):
    binary (one sigmoid channel for the single foreground label) when `num_classes` is 1, softmax
    classes otherwise."""
    values = list(range(len(names))) if values is None else [int(v) for v in values]
    if len(values) != len(names):
        raise ValueError(f"{len(names)} label names but {len(values)} values")
    binary = num_classes == 1 if num_classes is not None else len(names) == 2
    if binary:
        return {"values": [values[0], values[1]], "names": [str(n) for n in names[:2]], "activation": "sigmoid",
                "decision": "threshold", "threshold": THRESHOLD, "foreground": values[1],
                "png_foreground": PNG_FOREGROUND}
    return {"values": values, "names": [str(n) for n in names], "activation": "softmax", "decision": "argmax"}


def region_label_map(names: Sequence[str], values: Sequence[int], regions: Mapping[str, Sequence[int]],
                     order: Sequence[int] | None = None, painting: str = "order") -> dict:
    """The label map of a network with one sigmoid channel per region (in `regions`' order)."""
    if painting not in ("order", "brats"):
        raise ValueError(f"painting must be 'order' or 'brats', got {painting!r}")
    label_map = {"values": [int(v) for v in values], "names": [str(n) for n in names], "activation": "sigmoid",
                 "decision": "regions", "threshold": THRESHOLD,
                 "regions": {str(name): [int(v) for v in members] for name, members in regions.items()},
                 "painting": painting}
    if order is not None:
        label_map["order"] = [int(v) for v in order]
    return label_map


#: How each decision's targets are served to the loss: one float mask, class indices for a
#: softmax, one float mask per region.
TARGET_KINDS = {"threshold": "binary", "argmax": "index", "regions": "regions"}


def target_kind(label_map: Mapping) -> str:
    """"binary", "index" or "regions": the kind of target a network of this label map trains on."""
    return TARGET_KINDS[label_map["decision"]]


def metric_class_names(label_map: Mapping) -> tuple[str, ...]:
    """The classes the metrics report: the foreground label (binary), each class after the
    background (softmax), or each region (sigmoid regions)."""
    if label_map["decision"] == "regions":
        return tuple(label_map["regions"])
    return tuple(label_map["names"][1:])


def output_channels(label_map: Mapping) -> int:
    """The output channels a network of this label map has."""
    if label_map["decision"] == "threshold":
        return 1
    if label_map["decision"] == "regions":
        return len(label_map["regions"])
    return len(label_map["values"])


def probability_names(label_map: Mapping) -> list[str]:
    """One name per probability channel (the foreground, each class, or each region)."""
    if label_map["decision"] == "threshold":
        return [label_map["names"][1]]
    if label_map["decision"] == "regions":
        return list(label_map["regions"])
    return list(label_map["names"])


def probabilities_to_labels(probabilities: np.ndarray, label_map: Mapping) -> np.ndarray:
    """Probabilities (K, *spatial) -> uint8 label values (*spatial), by the map's decision."""
    probabilities = np.asarray(probabilities)
    decision = label_map["decision"]
    if probabilities.shape[0] != output_channels(label_map):
        raise ValueError(f"{probabilities.shape[0]} probability channels; the label map's {decision} "
                         f"decision needs {output_channels(label_map)}")
    if decision == "threshold":
        foreground = probabilities[0] > label_map["threshold"]
        return np.where(foreground, label_map["foreground"], label_map["values"][0]).astype(np.uint8)
    if decision == "argmax":
        return np.asarray(label_map["values"], dtype=np.uint8)[probabilities.argmax(axis=0)]
    order = BRATS_REGION_ORDER if label_map.get("painting") == "brats" else label_map["order"]
    return paint_regions(probabilities, order, label_map["threshold"])


def paint_regions(regions: ArrayLike, order: Sequence[int], threshold: float = THRESHOLD) -> ArrayLike:
    """Region channels (R, *spatial) (probabilities or masks) -> uint8 label values (*spatial):
    region r, where above `threshold`, painted with `order[r]`, in order, later regions over
    earlier ones (nnU-Net's regions_class_order; BraTS' nested WT/TC/ET alike). A torch tensor
    comes back as a tensor on its device, anything else as a numpy array."""
    if isinstance(regions, torch.Tensor):
        masks = regions > threshold
        labels = torch.zeros(masks.shape[1:], dtype=torch.uint8, device=regions.device)
    else:
        masks = np.asarray(regions) > threshold
        labels = np.zeros(masks.shape[1:], dtype=np.uint8)
    if len(masks) != len(order):
        raise ValueError(f"{len(masks)} region channels but {len(order)} values to paint them with")
    for mask, value in zip(masks, order):
        labels[mask] = value
    return labels


def check_label_map(label_map: object, source: str) -> list[str]:
    """Problems of a stored label map, one line each (empty when it is usable)."""
    if not isinstance(label_map, Mapping):
        return [f"{source}: labels is not an object"]
    problems = [f"{source}: labels lacks {key!r}" for key in ("values", "names", "activation", "decision")
                if key not in label_map]
    if problems:
        return problems
    if label_map["decision"] not in DECISIONS:
        problems.append(f"{source}: unknown label decision {label_map['decision']!r}; expected one of "
                        f"{', '.join(DECISIONS)}")
    needed = {"threshold": ("threshold", "foreground"), "regions": ("threshold", "regions")}.get(
        label_map["decision"], ())
    problems += [f"{source}: labels lacks {key!r} (needed by its {label_map['decision']} decision)"
                 for key in needed if key not in label_map]
    ordered = label_map["decision"] == "regions" and label_map.get("painting", "order") == "order"
    if ordered and "order" not in label_map:
        problems.append(f"{source}: labels lacks 'order' (the value each region is painted with)")
    return problems


__all__ = ["DECISIONS", "PNG_FOREGROUND", "THRESHOLD", "check_label_map", "class_label_map", "output_channels",
           "paint_regions", "probabilities_to_labels", "probability_names", "region_label_map"]
