"""OpenDP's prelude, which smartnoise-sql imports, loads scikit-learn for its PCA alone: about 1.6 s of a SQL
runner's or pricing worker's start on a two-core node, for a class no engine module uses.

Importing this module (before opendp's prelude) puts a stand-in for `opendp._extrinsics.sklearn` in
`sys.modules`; its first attribute read loads the real package. It finds the package's files without importing
opendp, so a process that imports this module and never uses OpenDP (the facade) loads neither.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACKAGE = "opendp._extrinsics.sklearn"


def stand_in() -> ModuleType | None:
    """The stand-in package, or None where OpenDP has no such package (another version)."""
    opendp = importlib.util.find_spec("opendp")  # a top-level look-up reads the path, imports nothing
    if opendp is None or not opendp.submodule_search_locations:
        return None
    directory = Path(next(iter(opendp.submodule_search_locations))) / "_extrinsics" / "sklearn"
    spec = importlib.util.spec_from_file_location(PACKAGE, directory / "__init__.py",
                                                  submodule_search_locations=[str(directory)])
    if spec is None or spec.loader is None or not (directory / "__init__.py").is_file():
        return None
    module = ModuleType(PACKAGE)
    # The real file, path and spec: module scans (inspect, pydantic's docstrings) then leave it unloaded.
    module.__file__ = spec.origin
    module.__path__ = list(spec.submodule_search_locations or [])
    module.__spec__ = spec

    def load(name: str) -> object:
        real = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = real
        spec.loader.exec_module(real)  # type: ignore[union-attr]
        module.__dict__.update({key: value for key, value in real.__dict__.items() if key != "__getattr__"})
        module.__dict__.pop("__getattr__", None)
        return getattr(real, name)

    module.__getattr__ = load  # type: ignore[method-assign]
    return module


def defer() -> None:
    """Register the stand-in, unless the real package (or a stand-in) is there already."""
    if PACKAGE in sys.modules:
        return
    module = stand_in()
    if module is None:
        return
    sys.modules[PACKAGE] = module
    parent = sys.modules.get(PACKAGE.rpartition(".")[0])
    if parent is not None:
        parent.__dict__["sklearn"] = module  # as an import would, so `from parent import sklearn` finds it


defer()
