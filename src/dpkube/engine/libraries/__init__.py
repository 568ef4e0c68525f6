"""One module per DP library, each importing its library at import time; loaded only on demand.

Every module offers two functions, on either side of the moment the data is read:

- `cost(payload, metadata) -> Cost`: pure, from the request and the metadata. It runs before any
  data is read and raises every refusal the request and the metadata decide (InvalidQuery,
  PayloadRejected), so that a refusal is free and says nothing about the data.
- `run(payload, metadata, frame, cost) -> response`: the Lomas `query_response`, built from DP
  outputs and public facts only (models are rebuilt, never shipped as fitted). Whatever it
  raises happened on the private data: ExternalLibraryError, whose text may quote the library
  and is for the operator's log, never for the user.

Sibling modules `<library>_fitting` and `<library>_release` hold what a library needs to fit over
public facts and to rebuild its release.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from dpkube.models.payloads import Library

OPENDP_SKLEARN = "opendp._extrinsics.sklearn"

MODULES = {
    Library.SMARTNOISE_SQL: "dpkube.engine.libraries.smartnoise_sql",
    Library.OPENDP: "dpkube.engine.libraries.opendp",
    Library.DIFFPRIVLIB: "dpkube.engine.libraries.diffprivlib",
    Library.SMARTNOISE_SYNTH: "dpkube.engine.libraries.smartnoise_synth",
}


def library_module(library: Library) -> ModuleType:
    """The engine module of `library`, importing the library itself on first use."""
    return importlib.import_module(MODULES[Library(library)])


def defer_opendp_sklearn() -> None:
    """OpenDP's prelude, which smartnoise-sql imports, loads scikit-learn for its PCA alone: about 1.6 s of a
    SQL runner's or pricing worker's start on a two-core node. No engine module uses that PCA, so the prelude
    gets a stand-in package whose attributes load the real one on first use (diffprivlib imports
    scikit-learn itself). The stand-in keeps the real `__file__` and `__path__`, so module scans (inspect,
    pydantic's docstrings) do not load it."""
    if OPENDP_SKLEARN in sys.modules:
        return
    spec = importlib.util.find_spec(OPENDP_SKLEARN)
    if spec is None or spec.loader is None:
        return
    stand_in = ModuleType(OPENDP_SKLEARN)
    stand_in.__file__ = spec.origin
    stand_in.__path__ = list(spec.submodule_search_locations or [])
    stand_in.__spec__ = spec

    def load(name: str) -> object:
        real = importlib.util.module_from_spec(spec)
        sys.modules[OPENDP_SKLEARN] = real
        spec.loader.exec_module(real)  # type: ignore[union-attr]
        stand_in.__dict__.update({k: v for k, v in real.__dict__.items() if k != "__getattr__"})
        stand_in.__dict__.pop("__getattr__", None)
        return getattr(real, name)

    stand_in.__getattr__ = load  # type: ignore[method-assign]
    sys.modules[OPENDP_SKLEARN] = stand_in
    parent, _, name = OPENDP_SKLEARN.rpartition(".")
    setattr(sys.modules[parent], name, stand_in)  # as an import would: `from parent import name` then finds it


defer_opendp_sklearn()
