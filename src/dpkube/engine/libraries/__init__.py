"""One module per DP library, each importing its library at import time; loaded only on demand.

Every module offers `cost(payload, metadata) -> Cost` (pure, from the request and metadata) and
`run(payload, metadata, frame, cost) -> response` (the Lomas `query_response`).
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
