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
from types import ModuleType

from dpkube.models.payloads import Library

MODULES = {
    Library.SMARTNOISE_SQL: "dpkube.engine.libraries.smartnoise_sql",
    Library.OPENDP: "dpkube.engine.libraries.opendp",
    Library.DIFFPRIVLIB: "dpkube.engine.libraries.diffprivlib",
    Library.SMARTNOISE_SYNTH: "dpkube.engine.libraries.smartnoise_synth",
}


def library_module(library: Library) -> ModuleType:
    """The engine module of `library`, importing the library itself on first use."""
    return importlib.import_module(MODULES[Library(library)])
