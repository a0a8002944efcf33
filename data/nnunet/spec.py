"""Users' own data sets described: `dataset.json` of the nnU-Net v2 raw layout or of the Medical
Segmentation Decathlon layout, read into one `NnunetSpec` (channels, labels, regions, cases and
their files) for both.

Both are a folder holding `dataset.json`, `imagesTr/`, `labelsTr/` (and optionally
`imagesTs/`); which one it is comes from `dataset.json` itself:

- nnU-Net v2 (`channel_names`, `labels` name -> value, `file_ending`, `numTraining`):
  `imagesTr/<case>_<XXXX><ending>` (XXXX the 4-digit channel index) and
  `labelsTr/<case><ending>`; or the explicit `dataset` map of case -> images, label.
- Decathlon (`modality`, `labels` value -> name, `training` list of {image, label}): one
  4D NIfTI per case with the channels on its last axis; macOS `._*` files are skipped.

nnU-Net's own rules hold: label values consecutive from background 0, a label may be a list of
values (a region, with `regions_class_order`).
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from data.errors import DataError, data_error, require_data_root
from data.io.images import ENDINGS, PLANAR_ENDINGS, ending_of, endings_text, image_dimension, stem_of

DATASET_JSON = "dataset.json"
NNUNET_V2 = "nnU-Net v2"
DECATHLON = "Decathlon"
_CHANNEL_INDEX = re.compile(r"_(\d{4})$")
# nnU-Net's sparse-annotation label: needs a masked loss that no training loop here has.
IGNORE_LABEL = "ignore"


@dataclass(frozen=True)
class CaseFiles:
    # file index -> path: nnU-Net v2's XXXX (a 2D RGB file holds 3 channels), 0 for a Decathlon 4D file
    images: dict[int, Path]
    label: Path


@dataclass(frozen=True)
class NnunetSpec:
    """dataset.json and the case files it implies, in one form for both layouts."""

    root: Path
    layout: str  # NNUNET_V2 or DECATHLON
    channels: tuple[str, ...]
    # label name -> its values: one value, or several for a region; in dataset.json's order
    labels: dict[str, tuple[int, ...]]
    regions_class_order: tuple[int, ...] | None
    file_ending: str
    num_training: int | None
    cases: dict[str, CaseFiles]
    stray: tuple[str, ...]  # one-line problems of files that name no case (misnamed)
    dims: int  # spatial dimensions of the image files (2: served as they are)

    @property
    def path(self) -> Path:
        return self.root / DATASET_JSON

    @property
    def planar(self) -> bool:
        """Whether the files are natural 2D images (PNG, BMP, TIFF: RGB counts 3 channels)."""
        return self.file_ending.lower() in PLANAR_ENDINGS

    @property
    def label_values(self) -> tuple[int, ...]:
        return tuple(sorted({value for values in self.labels.values() for value in values}))

    @property
    def foreground(self) -> dict[str, tuple[int, ...]]:
        """The labels (or regions) a network predicts: every entry but background."""
        return {name: values for name, values in self.labels.items() if values != (0,)}

    @property
    def has_regions(self) -> bool:
        return self.regions_class_order is not None

    @property
    def num_classes(self) -> int:
        """Output channels: one per region; 1 for a single foreground label (binary); else classes."""
        count = len(self.foreground)
        return count if self.has_regions or count == 1 else count + 1

    @functools.cached_property
    def _case_of_label(self) -> dict[Path, str]:
        return {files.label: case for case, files in self.cases.items()}

    def case_id(self, label_path: Path) -> str:
        return self._case_of_label[Path(label_path)]

    def channel_file(self, case: str, index: int) -> Path:
        """Where nnU-Net v2 expects file `index` of `case` (for naming a missing file)."""
        return self.root / "imagesTr" / f"{case}_{index:04d}{self.file_ending}"


def read_dataset_json(root: str | os.PathLike) -> NnunetSpec:
    """Parse `root/dataset.json` (either layout) and list the training cases' files."""
    root = require_data_root(root)
    path = root / DATASET_JSON
    if not path.is_file():
        nested = sorted(p.parent.name for p in root.glob(f"*/{DATASET_JSON}"))
        hint = f"; did you mean {root / nested[0]}?" if nested else ""
        raise data_error(root, f"no {DATASET_JSON}; expected an nnU-Net v2 (DatasetXXX_Name/) or Decathlon "
                         f"(TaskXX_Name/) folder holding {DATASET_JSON}, imagesTr/ and labelsTr/{hint}")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise data_error(path, f"not valid JSON ({exc}); expected the data set's description") from None
    if not isinstance(content, dict):
        raise data_error(path, "expected a JSON object")
    if "channel_names" in content:
        layout, channels, labels, ending, cases, stray = NNUNET_V2, *_nnunet_v2(root, path, content)
    elif "training" in content and "modality" in content:
        layout, channels, labels, ending, cases, stray = DECATHLON, *_decathlon(root, path, content)
    else:
        raise data_error(path, "has neither channel_names (nnU-Net v2) nor modality and training (Decathlon); "
                         "expected one of the two layouts")
    # region-based training (nnU-Net's rule): some label is a list of several values
    regions = any(len(values) > 1 for values in labels.values())
    region_order = _region_order(path, content.get("regions_class_order"), labels) if regions else None
    num_training = content.get("numTraining")
    if num_training is not None and not isinstance(num_training, int):
        raise data_error(path, f"numTraining is {num_training!r}; expected the number of training cases")
    dims = _dimension(cases, ending)
    return NnunetSpec(root, layout, channels, labels, region_order, ending, num_training, cases, stray, dims)


def _nnunet_v2(root: Path, path: Path, content: dict):
    channels = _indexed_names(path, content["channel_names"], "channel_names")
    labels = _labels_by_name(path, content.get("labels"))
    ending = content.get("file_ending")
    if not isinstance(ending, str) or ending.lower() not in ENDINGS:
        raise data_error(path, f"file_ending is {ending!r}; expected one of {endings_text()}")
    if "dataset" in content:  # explicit file lists instead of the imagesTr/labelsTr naming
        return channels, labels, ending, _explicit_cases(root, path, content["dataset"]), ()
    images: dict[str, dict[int, Path]] = {}
    stray = []
    image_files, other_images = _listed(root / "imagesTr", ending)
    label_files, other_labels = _listed(root / "labelsTr", ending)
    for file in image_files:
        match = _CHANNEL_INDEX.search(file.name[: -len(ending)])
        if match is None:
            stray.append(str(data_error(file, f"not named <case>_XXXX{ending}; expected the case id and "
                                        "the 4-digit channel index (0000, 0001, ...)")))
            continue
        images.setdefault(file.name[: match.start()], {})[int(match.group(1))] = file
    labelled = {file.name[: -len(ending)] for file in label_files}
    # files of another ending are not read: name them, or their case is only a count that is off
    stray += [str(data_error(file, f"ending {file.name[len(stem_of(file)):]} is not the file_ending {ending} of "
                             f"{DATASET_JSON}; expected {stem_of(file)}{ending} (a file with another ending is not "
                             "read)"))
              for file in (*other_images, *other_labels)]
    cases = {case: CaseFiles(dict(sorted(images.get(case, {}).items())), root / "labelsTr" / f"{case}{ending}")
             for case in sorted(set(images) | labelled)}
    return channels, labels, ending, cases, tuple(stray)


def _explicit_cases(root: Path, path: Path, listing) -> dict[str, CaseFiles]:
    if not isinstance(listing, dict):
        raise data_error(path, "dataset is not an object; expected case -> {images: [...], label: ...}")
    cases = {}
    for case, entry in listing.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("images"), list) or "label" not in entry:
            raise data_error(path, f"dataset entry {case!r} is not {{images: [...], label: ...}}")
        images = {index: _resolve(root, name) for index, name in enumerate(entry["images"])}
        cases[str(case)] = CaseFiles(images, _resolve(root, entry["label"]))
    return cases


def _decathlon(root: Path, path: Path, content: dict):
    channels = _indexed_names(path, content["modality"], "modality")
    raw = content.get("labels")
    if not isinstance(raw, dict):
        raise data_error(path, "labels is not an object; expected value -> name, e.g. {\"0\": \"background\"}")
    try:
        labels = {str(name): (int(value),) for value, name in sorted(raw.items(), key=lambda kv: int(kv[0]))}
    except ValueError:
        raise data_error(path, f"labels keys {sorted(raw)} are not all integers; expected value -> name "
                         "(the Decathlon layout)") from None
    _check_labels(path, labels)
    if not isinstance(content["training"], list):
        raise data_error(path, "training is not a list; expected [{\"image\": ..., \"label\": ...}, ...]")
    cases: dict[str, CaseFiles] = {}
    ending = ".nii.gz"
    for entry in content["training"]:
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise data_error(path, f"training entry {entry!r} is not {{\"image\": ..., \"label\": ...}}")
        image, label = _resolve(root, entry["image"]), _resolve(root, entry["label"])
        if image.name.startswith("._"):  # macOS resource forks of the published archives
            continue
        ending = ending_of(label) or ending
        case = label.name[: -len(ending)] if ending_of(label) else label.name
        if case in cases:
            raise data_error(path, f"case {case} is listed twice in training; expected unique cases")
        cases[case] = CaseFiles({0: image}, label)
    return channels, labels, ending, cases, ()


def _indexed_names(path: Path, names, key: str) -> tuple[str, ...]:
    if not isinstance(names, dict) or not names:
        raise data_error(path, f"{key} is not a non-empty object; expected {{\"0\": \"CT\", ...}}")
    if sorted(names, key=str) != [str(i) for i in range(len(names))]:
        raise data_error(path, f"{key} keys {sorted(names)}; expected 0, 1, ... {len(names) - 1}")
    return tuple(str(names[str(i)]) for i in range(len(names)))


def _labels_by_name(path: Path, raw) -> dict[str, tuple[int, ...]]:
    if not isinstance(raw, dict):
        raise data_error(path, "labels is not an object; expected name -> value, e.g. {\"background\": 0}")
    labels = {}
    for name, value in raw.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise data_error(path, f"label {name!r} is {value!r}; expected an integer or a list of integers")
        labels[str(name)] = tuple(values)
    _check_labels(path, labels)
    return labels


def _check_labels(path: Path, labels: dict[str, tuple[int, ...]]) -> None:
    if IGNORE_LABEL in labels:
        raise data_error(path, f"label {IGNORE_LABEL!r} (nnU-Net's sparse annotation) cannot be served; "
                         "expected fully annotated labels")
    if (0,) not in labels.values():
        raise data_error(path, "no label with value 0; expected background 0")
    values = sorted({v for vs in labels.values() for v in vs})
    if values != list(range(len(values))) or values[-1] > 255:
        raise data_error(path, f"label values {', '.join(map(str, values))}; expected consecutive values "
                         "0, 1, 2, ... up to 255 (nnU-Net's rule)")
    if len(labels) < 2:
        raise data_error(path, "only background among the labels; expected at least one structure")


def _region_order(path: Path, order, labels: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    regions = len([v for v in labels.values() if v != (0,)])
    if not isinstance(order, list) or len(order) != regions or not all(isinstance(v, int) for v in order):
        raise data_error(path, f"regions_class_order is {order!r}; expected a list of {regions} label values, "
                         "one per region (region-based labels)")
    return tuple(order)


def _resolve(root: Path, name) -> Path:
    path = Path(os.path.expandvars(str(name)))
    return path if path.is_absolute() else root / path


def _listed(folder: Path, ending: str) -> tuple[list[Path], list[Path]]:
    """Files of `folder` with `ending`, and its image files (an ENDINGS entry) of another ending;
    hidden files and macOS `._*` resource forks left out."""
    if not folder.is_dir():
        return [], []
    files = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())
    return ([p for p in files if p.name.endswith(ending)],
            [p for p in files if not p.name.endswith(ending) and ending_of(p) is not None])


def _dimension(cases: dict[str, CaseFiles], ending: str) -> int:
    if ending.lower() in PLANAR_ENDINGS:
        return 2
    for files in cases.values():
        for path in files.images.values():
            try:
                return image_dimension(path)
            except DataError:
                continue  # missing or unreadable: the case's own check names it
    return 3
