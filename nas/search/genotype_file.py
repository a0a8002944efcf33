"""Genotype files: versioned JSON, validated on load with one-line errors. Never ``eval``.

Layout of a version-1 file::

    {"version": 1, "space": "unet",
     "layout": {"encoder": 2, "middle": 3, "decoder": 2}, "channels": 16, "nodes": 4,
     "in_channels": 3, "num_classes": 1, "spatial_dims": 2, "project_output": true,
     "primitives": [...],
     "cell_types": ["encoder", "encoder", "middle", ...],        # one key per cell
     "cells": {"encoder": [[["sep_conv_3x3", 0], ["ghost", 1]], ...4 nodes], ...},
     "dataset": "dsb2018", "search": {...settings...},
     "alphas": {"encoder": [[...8 weights...] x 14 edges], ...},
     "complexity": {"params": ..., "flops": ..., "input_shape": [...]}}
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import ops
from nas.train.files import atomic_write_text
from supernet import SPACES, WIDTH_GROWTH, Genotype, edges_into
from supernet.unet import parse_layout

FORMAT_VERSION = 1
_ARCHITECTURE_KEYS = ("space", "layout", "channels", "nodes", "in_channels", "num_classes",
                      "spatial_dims", "project_output", "primitives", "cell_types", "cells")


class GenotypeError(ValueError):
    """A genotype file that cannot be used; the message is one line naming the file."""


def genotype_to_dict(genotype: Genotype, **metadata: Any) -> dict:
    """The JSON-ready form of ``genotype`` plus metadata (dataset, search, alphas, complexity)."""
    data = {
        "version": FORMAT_VERSION,
        "space": genotype.space,
        "layout": dict(genotype.layout),
        "channels": genotype.channels,
        "nodes": genotype.nodes,
        "in_channels": genotype.in_channels,
        "num_classes": genotype.num_classes,
        "spatial_dims": genotype.spatial_dims,
        "project_output": genotype.project_output,
        "primitives": list(genotype.primitives),
        "cell_types": list(genotype.cell_types),
        "cells": {key: [[[op, index] for op, index in node] for node in cell]
                  for key, cell in genotype.cells.items()},
    }
    if genotype.space == "unet":
        data["width_growth"] = genotype.width_growth
    clash = set(metadata) & set(data)
    if clash:
        raise ValueError(f"metadata keys {sorted(clash)} clash with the genotype's own fields")
    data.update(metadata)
    return data


def save_genotype(path: str | os.PathLike, genotype: Genotype, **metadata: Any) -> Path:
    """Write the genotype atomically (temp file + rename) as indented JSON."""
    return atomic_write_text(path, readable_json(genotype_to_dict(genotype, **metadata)))


def readable_json(data: Any) -> str:
    """Indented JSON with every innermost list (an [op, input] pair, a row of alphas) on one
    line, so a genotype reads as a table."""
    text = json.dumps(data, indent=2)
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]",
                  text)
    return text + "\n"


def _fail(source: str, message: str) -> GenotypeError:
    return GenotypeError(f"{source}: {message}")


def _int(data: Mapping, key: str, source: str, minimum: int = 1) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _fail(source, f"'{key}' must be an integer >= {minimum}, got {value!r}")
    return value


def genotype_from_dict(data: Any, source: str = "<genotype>") -> Genotype:
    """Validate a parsed genotype file and build the :class:`Genotype`; every problem is a
    one-line :class:`GenotypeError` starting with ``source``."""
    if not isinstance(data, dict):
        raise _fail(source, f"expected a JSON object, got {type(data).__name__}")
    version = data.get("version")
    if version != FORMAT_VERSION:
        raise _fail(source, f"unsupported genotype version {version!r} (this toolkit reads "
                            f"version {FORMAT_VERSION})")
    missing = [key for key in _ARCHITECTURE_KEYS if key not in data]
    if missing:
        raise _fail(source, f"missing field(s) {', '.join(missing)}")
    space = data["space"]
    if space not in SPACES:
        raise _fail(source, f"unknown space {space!r}; valid: {', '.join(SPACES)}")
    nodes = _int(data, "nodes", source)
    channels = _int(data, "channels", source)
    in_channels = _int(data, "in_channels", source)
    num_classes = _int(data, "num_classes", source)
    spatial_dims = data["spatial_dims"]
    if spatial_dims not in (2, 3):
        raise _fail(source, f"'spatial_dims' must be 2 or 3, got {spatial_dims!r}")
    layout = data["layout"]
    if not isinstance(layout, dict):
        raise _fail(source, f"'layout' must be an object, got {layout!r}")
    try:
        expected_cells = (sum(parse_layout(layout).values()) if space == "unet"
                          else _int(layout, "cells", source, minimum=3))
    except (ValueError, KeyError) as error:
        raise _fail(source, f"bad layout {layout!r} ({error})") from None
    known_ops = set(ops.list_ops())
    primitives = data["primitives"]
    if not isinstance(primitives, list) or not all(isinstance(p, str) for p in primitives):
        raise _fail(source, "'primitives' must be a list of op names")
    for name in primitives:
        if name not in known_ops:
            raise _fail(source, f"unknown op {name!r} in primitives")
    cells_data = data["cells"]
    if not isinstance(cells_data, dict) or not cells_data:
        raise _fail(source, "'cells' must be a non-empty object of cell type -> nodes")
    cells = {}
    for key, cell in cells_data.items():
        cells[key] = _parse_cell(cell, key, nodes, known_ops, source)
    cell_types = data["cell_types"]
    if not isinstance(cell_types, list) or len(cell_types) != expected_cells:
        count = len(cell_types) if isinstance(cell_types, list) else cell_types
        raise _fail(source, f"'cell_types' must list one key per cell ({expected_cells} for "
                            f"layout {layout}), got {count}")
    for key in cell_types:
        if key not in cells:
            raise _fail(source, f"cell type {key!r} in cell_types has no entry in 'cells'")
    if space == "unet":
        layout = parse_layout(layout)
    project_output = data["project_output"]
    if not isinstance(project_output, bool):
        raise _fail(source, f"'project_output' must be true or false, got {project_output!r}")
    width_growth = data.get("width_growth", WIDTH_GROWTH)  # files before it was recorded: 2
    if (not isinstance(width_growth, (int, float)) or isinstance(width_growth, bool)
            or not width_growth > 0):
        raise _fail(source, f"'width_growth' must be a positive number, got {width_growth!r}")
    return Genotype(space=space, cells=cells, cell_types=tuple(cell_types), layout=layout,
                    channels=channels, in_channels=in_channels, num_classes=num_classes,
                    spatial_dims=spatial_dims, nodes=nodes, project_output=project_output,
                    primitives=tuple(primitives), width_growth=float(width_growth))


def _parse_cell(cell: Any, key: str, nodes: int, known_ops: set, source: str):
    if not isinstance(cell, list) or len(cell) != nodes:
        raise _fail(source, f"cell {key!r} must list {nodes} nodes, got "
                            f"{len(cell) if isinstance(cell, list) else type(cell).__name__}")
    parsed = []
    readable = [[state for _, state in incoming] for incoming in edges_into(nodes)]
    for node_index, node in enumerate(cell):
        where = f"cell {key!r} node {node_index}"
        if not isinstance(node, list) or len(node) != 2:
            raise _fail(source, f"{where} must hold 2 [op, input_index] pairs, got {node!r}")
        pairs = []
        for pair in node:
            if (not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str)
                    or not isinstance(pair[1], int) or isinstance(pair[1], bool)):
                raise _fail(source, f"{where}: expected [op, input_index], got {pair!r}")
            op, index = pair
            if op not in known_ops:
                raise _fail(source, f"{where}: unknown op {op!r}")
            if index not in readable[node_index]:
                raise _fail(source, f"{where}: bad input index {index} (node {node_index} reads "
                                    f"inputs {readable[node_index][0]}..{readable[node_index][-1]})")
            pairs.append((op, index))
        parsed.append(tuple(pairs))
    return tuple(parsed)


def load_genotype_file(path: str | os.PathLike) -> tuple[Genotype, dict]:
    """Read and validate a genotype file: the genotype and the whole parsed JSON (metadata)."""
    source = str(path)
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        raise GenotypeError(f"{source}: cannot read genotype file ({error.strerror})") from None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:  # a checkpoint (a zip of pickles) or an image given for the JSON file
        raise _fail(source, "not a genotype file but a binary file (a checkpoint?); expected the genotype.json "
                            "of a search") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise _fail(source, f"not valid JSON ({error.msg} at line {error.lineno})") from None
    return genotype_from_dict(data, source), data


def load_genotype(path: str | os.PathLike) -> Genotype:
    """Read and validate a genotype file."""
    return load_genotype_file(path)[0]


__all__ = ["FORMAT_VERSION", "GenotypeError", "genotype_to_dict", "genotype_from_dict",
           "save_genotype", "load_genotype", "load_genotype_file"]
