"""PNG reading and writing.

SimpleITK reads every PNG flavour the datasets use (1-bit, 8-bit grey, RGB,
RGBA) and writes 8-bit grey and RGBA. None of the project's libraries writes
1-bit PNGs (the format of CHAOS CT masks), so `write_png_1bit` encodes that
one case with the standard library: the PNG format is a zlib stream of
filtered rows wrapped in CRC'd chunks.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from data.errors import data_error, reason
from data.io.lazy import sitk

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Pixels of a PNG (or TIFF, BMP) as (H, W) or (H, W, channels); 1-bit PNGs read as 0/255."""
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        what = Path(path).suffix.lstrip(".").upper() or "image"
        raise data_error(path, f"unreadable or truncated {what} ({reason(exc)})") from None
    return sitk.GetArrayFromImage(image)


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 (H, W) grey or (H, W, channels) colour PNG."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    image = sitk.GetImageFromArray(array, isVector=array.ndim == 3)
    sitk.WriteImage(image, str(path))


def write_png_1bit(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a boolean (H, W) mask as a 1-bit greyscale PNG (colour type 0, depth 1)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2D mask, got shape {mask.shape}")
    height, width = mask.shape
    rows = np.packbits(mask, axis=1)  # 8 pixels per byte, most significant bit first
    # Each scanline is preceded by its filter type byte; 0 = no filter.
    scanlines = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    data = _PNG_SIGNATURE + _chunk(b"IHDR", header)
    data += _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 9)) + _chunk(b"IEND", b"")
    Path(path).write_bytes(data)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)
