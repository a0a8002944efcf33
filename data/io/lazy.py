"""The file formats' packages (SimpleITK, nibabel, pydicom), imported when a file of theirs is
first read or written: ``import data`` needs none of them, so a machine without them (the GPU
image of issue 26) still imports the package, lists the data sets and runs what reads no such
file. A missing package raises its ImportError at that first use."""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """Stands for the module ``name`` and imports it on the first attribute asked of it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)

    def __getattr__(self, attribute: str) -> Any:
        # sys.modules caches the import: later lookups cost a dict access
        return getattr(importlib.import_module(self.__name__), attribute)


sitk = LazyModule("SimpleITK")
nib = LazyModule("nibabel")
pydicom = LazyModule("pydicom")
