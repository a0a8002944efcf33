"""Optional packages (TensorBoard, ONNX, onnxruntime): imported on first use, and a missing one
is one line naming the flag that needs it and how to install it (``lwnas[...]`` extras)."""
from __future__ import annotations

import importlib
from types import ModuleType


class MissingPackageError(ImportError):
    """An optional package a flag needs is not installed; the message is one line."""


def require_package(module: str, purpose: str, extra: str) -> ModuleType:
    """``import module``, or a :class:`MissingPackageError` naming ``purpose`` (a flag) and the
    ``lwnas[extra]`` extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingPackageError(f"{purpose} needs the {package} package, which is not installed; install it "
                                  f"with: pip install 'lwnas[{extra}]'") from None


__all__ = ["MissingPackageError", "require_package"]
