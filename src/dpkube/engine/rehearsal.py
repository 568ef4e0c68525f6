"""A rehearsal: the seed queries of a library run once on dummy rows, before any query is known.

A process that has only imported smartnoise-sql still pays about 350 ms on its first query (the SQL
parser's caches fill on first use) against about 25 ms on the next; reading a first CSV is slow too. A
warm runner or the node agent's zygote rehearses while it is idle, so the query it gets runs at the
second speed. The rows are drawn from the demo dataset's public metadata: a rehearsal reads no data and
releases nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from dpkube.engine.datasets import demo_metadata, frame_from_bytes
from dpkube.engine.dummy import dummy_frame
from dpkube.engine.release import run_query
from dpkube.models import examples
from dpkube.models.payloads import Library

log = logging.getLogger(__name__)
ROWS = 200
SQL_SHAPES = (
    "SELECT species, COUNT(*) AS n, AVG(bill_length_mm) AS bill, SUM(body_mass_g) AS mass FROM df "
    "WHERE flipper_length_mm > 150 GROUP BY species",
)
"""Beyond the seed's count: grouping, averages, sums and a filter, the shapes users send most."""

_rehearsed: set[Library] = set()


def rehearsals(library: Library) -> list[dict[str, Any]]:
    """The payloads a library rehearses: its seed query, and for SQL the common shapes too."""
    seed = examples.payload_fields(library, examples.QUERIES[library])
    if library is Library.SMARTNOISE_SQL:
        return [seed, *({**seed, "query_str": shape} for shape in SQL_SHAPES)]
    return [seed]


def rehearse(library: Library, again: bool = False) -> None:
    """Run the library's rehearsals once in this process (a forked child inherits what its parent did), or
    `again` (the zygote learns what a run writes).

    Best effort: a rehearsal that fails only leaves the first query slower, so it is logged and dropped."""
    if (library in _rehearsed and not again) or library is Library.SMARTNOISE_SYNTH:
        return  # synthesizers train for seconds: nothing a rehearsal could save is worth that
    _rehearsed.add(library)
    metadata = demo_metadata(examples.PENGUIN)
    dummy = dummy_frame(metadata, ROWS, seed=0)
    frame = frame_from_bytes(dummy.to_csv(index=False).encode(), "rehearsal.csv", metadata)  # the reader's path
    for payload in rehearsals(library):
        try:
            run_query(library, payload, metadata, frame)
        except Exception as error:  # dummy rows only: the message quotes no data
            log.warning("rehearsal of %s failed: %s", library.value, error)
