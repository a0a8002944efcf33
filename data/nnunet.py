"""Users' own data: the nnU-Net v2 raw layout and the Medical Segmentation Decathlon layout.

Both are a folder holding `dataset.json`, `imagesTr/`, `labelsTr/` (and optionally
`imagesTs/`); which one it is comes from `dataset.json` itself:

- nnU-Net v2 (`channel_names`, `labels` name -> value, `file_ending`, `numTraining`):
  `imagesTr/<case>_<XXXX><ending>` (XXXX the 4-digit channel index) and
  `labelsTr/<case><ending>`; or the explicit `dataset` map of case -> images, label.
- Decathlon (`modality`, `labels` value -> name, `training` list of {image, label}): one
  4D NIfTI per case with the channels on its last axis; macOS `._*` files are skipped.

A case reads to image (C, *spatial) float32, label (*spatial) uint8 (the label values
themselves) and meta, in the canonical axis order of `data.image_io`. nnU-Net's own rules
hold: label values consecutive from background 0, a label may be a list of values (a region,
with `regions_class_order`). `inspect_nnunet_case` collects every problem of a case, one line
each naming the file, for `data.check`.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.errors import DataError, checked_labels, data_error, millimetres, require_data_root, require_finite
from data.image_io import ENDINGS, PLANAR_ENDINGS, ending_of, endings_text, image_dimension, read_image_file

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


def find_nnunet_cases(spec: NnunetSpec) -> list[Path]:
    """The label path of every training case, sorted by case id (a case without a label file
    keeps the path it should have, so reading it names the missing file)."""
    if not spec.cases:
        raise data_error(spec.root / "imagesTr", f"no training cases found; looked for {_layout_text(spec)}"
                         f"{_ending_hint(spec)}")
    return [spec.cases[case].label for case in sorted(spec.cases)]


def read_nnunet_case(spec: NnunetSpec, case: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read one case: image (C, *spatial) float32, label (*spatial) uint8, meta; the first
    problem raises a DataError (`inspect_nnunet_case` lists them all)."""
    arrays, problems = inspect_nnunet_case(spec, case)
    if problems:
        raise DataError(problems[0])
    return arrays


def inspect_nnunet_case(spec: NnunetSpec, case: str) -> tuple[tuple | None, list[str]]:
    """Every problem of one case (one line each, naming the file), and its arrays if there is none.

    meta: spacing (mm per array axis), affine (array index -> LPS mm), original_shape, source
    (the first channel's file: the geometry of a prediction written back), channels, labels
    (name -> values), files, and for volumes slice_axis (the coarsest axis, cut into 2D items).
    """
    files = spec.cases[case]
    problems: list[str] = []
    channels: list[np.ndarray] = []
    reference: tuple | None = None  # (path, shape, spacing, affine) of the first readable file
    expected, found = len(spec.channels), 0
    last_index = max([*files.images, expected - 1]) if spec.layout == NNUNET_V2 else 0
    for index in range(last_index + 1):
        path = files.images.get(index, spec.channel_file(case, index))
        if not path.is_file():
            if found < expected:
                what = (f"image of case {case}; expected the 4D NIfTI listed in {DATASET_JSON} training"
                        if spec.layout == DECATHLON else f"channel {found} ({spec.channels[found]}) of case {case}; "
                        f"expected the file {path.name} in {path.parent.name}/")
                problems.append(str(data_error(path, f"missing {what}")))
                found += 1
            continue
        if found >= expected:
            problems.append(str(data_error(path, f"channel file beyond the {expected} channel(s) of "
                                           f"{DATASET_JSON}; expected {expected} file(s) per case")))
            continue
        try:
            array, geometry = read_image_file(path)
        except DataError as exc:
            problems.append(str(exc))
            found += 1
            continue
        count = len(array)
        wanted = expected if spec.layout == DECATHLON else (
            count if spec.planar and count <= expected - found else 1)
        if count != wanted:
            problems.append(str(data_error(path, f"holds {count} channel(s); expected {wanted} "
                                           f"({_channel_rule(spec)})")))
            found += 1
            continue
        problem = _grid_problem(path, array.shape[1:], geometry, reference, spec.dims)
        if problem:
            problems.append(problem)
            found += count
            continue
        reference = reference or (path, array.shape[1:], geometry["spacing"], geometry["affine"])
        for offset, values in enumerate(array):
            try:
                require_finite(path, values, f"channel {found + offset} ({spec.channels[found + offset]})")
            except DataError as exc:
                problems.append(str(exc))
        channels.append(array)
        found += count
    label = _read_label(spec, case, files.label, reference, problems)
    if problems:
        return None, problems
    source, shape, spacing, affine = reference
    meta = {
        "spacing": np.asarray(spacing, dtype=np.float64),
        "affine": np.asarray(affine, dtype=np.float64),
        "original_shape": np.asarray(shape, dtype=np.int64),
        "source": str(source),
        "channels": list(spec.channels),
        "labels": {name: list(values) for name, values in spec.labels.items()},
        "files": [str(p) for p in files.images.values()] + [str(files.label)],
    }
    if len(shape) == 3:
        meta["slice_axis"] = slice_axis(spacing)
    return (np.concatenate(channels).astype(np.float32, copy=False), label, meta), problems


def dataset_problems(spec: NnunetSpec) -> list[str]:
    """Problems of the data set as a whole: misnamed files, numTraining against the cases found."""
    problems = list(spec.stray)
    found = len(spec.cases)
    if spec.num_training is None:
        problems.append(str(data_error(spec.path, f"no numTraining; expected the number of training cases "
                                       f"({found} found)")))
    elif spec.num_training != found:
        problems.append(str(data_error(spec.path, f"numTraining is {spec.num_training} but {found} training "
                                       f"case(s) were found; expected numTraining to count the cases of "
                                       f"{_layout_text(spec)}")))
    return problems


def slice_axis(spacing: np.ndarray | tuple[float, ...]) -> int:
    """The axis 2D items are cut along: the coarsest spacing (the first such axis on ties)."""
    return int(np.argmax(np.round(np.asarray(spacing, dtype=np.float64), 6)))


# -- dataset.json of each layout ---------------------------------------------------------------


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
    for file in _listed(root / "imagesTr", ending):
        match = _CHANNEL_INDEX.search(file.name[: -len(ending)])
        if match is None:
            stray.append(str(data_error(file, f"not named <case>_XXXX{ending}; expected the case id and "
                                        "the 4-digit channel index (0000, 0001, ...)")))
            continue
        images.setdefault(file.name[: match.start()], {})[int(match.group(1))] = file
    labelled = {file.name[: -len(ending)] for file in _listed(root / "labelsTr", ending)}
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


def _listed(folder: Path, ending: str) -> list[Path]:
    """Files of `folder` with `ending`; hidden files and macOS `._*` resource forks left out."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(ending) and not p.name.startswith(".")
                  and p.is_file())


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


def _read_label(spec: NnunetSpec, case: str, path: Path, reference, problems: list[str]) -> np.ndarray | None:
    if not path.is_file():
        problems.append(str(data_error(path, f"missing label of case {case}; expected the segmentation "
                                       f"{path.name} in {path.parent.name}/")))
        return None
    try:
        array, geometry = read_image_file(path, dtype=None)
    except DataError as exc:
        problems.append(str(exc))
        return None
    if len(array) != 1:
        problems.append(str(data_error(path, f"holds {len(array)} channels; expected one label map")))
        return None
    problem = _grid_problem(path, array.shape[1:], geometry, reference, spec.dims)
    if problem:
        problems.append(problem)
        return None
    values = ", ".join(f"{v} ({name})" for name, vs in spec.labels.items() for v in vs if len(vs) == 1) \
        if not spec.has_regions else ", ".join(map(str, spec.label_values))
    try:
        return checked_labels(path, array[0], set(spec.label_values), f"the labels of {DATASET_JSON}: {values}")
    except DataError as exc:
        problems.append(str(exc))
        return None


def _grid_problem(path: Path, shape: tuple, geometry: dict, reference, dims: int) -> str | None:
    if len(shape) != dims:
        return str(data_error(path, f"is a {len(shape)}D image; expected {dims}D like the data set's other files"))
    if reference is None:
        return None
    ref_path, ref_shape, ref_spacing, _ = reference
    if tuple(shape) != tuple(ref_shape):
        return str(data_error(path, f"shape {'x'.join(map(str, shape))} differs from {ref_path.name} "
                              f"{'x'.join(map(str, ref_shape))}; expected every channel and the label on one grid"))
    if not np.allclose(geometry["spacing"], ref_spacing, rtol=1e-3, atol=1e-4):
        return str(data_error(path, f"spacing {millimetres(geometry['spacing'])} differs from {ref_path.name} "
                              f"{millimetres(ref_spacing)}; expected every channel and the label on one grid"))
    return None


def _channel_rule(spec: NnunetSpec) -> str:
    if spec.layout == DECATHLON:
        return f"the {len(spec.channels)} modalities of {DATASET_JSON} on the last axis of one 4D NIfTI"
    if spec.planar:
        return f"{len(spec.channels)} channel(s) in all per case; an RGB file counts 3"
    return "one channel per file, <case>_XXXX with XXXX the channel index"


def _layout_text(spec: NnunetSpec) -> str:
    if spec.layout == DECATHLON:
        return f"the training list of {DATASET_JSON}"
    return f"imagesTr/<case>_XXXX{spec.file_ending} with labelsTr/<case>{spec.file_ending}"


def _ending_hint(spec: NnunetSpec) -> str:
    folder = spec.root / "imagesTr"
    found = sorted({ending_of(p) for p in folder.iterdir() if ending_of(p)} if folder.is_dir() else set())
    others = [e for e in found if e != spec.file_ending]
    return f" (imagesTr holds {', '.join(others)} files; is file_ending right?)" if others else ""

