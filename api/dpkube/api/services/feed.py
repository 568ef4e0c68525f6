"""The facade's one list-and-watch of the DPQueries in its query namespace, however many requests wait.

Its view keeps of each query only what a reader needs: the user of an unfinished one (per-user in-flight
limits, quotas.py) and the archive entry of one that succeeded in query mode (history.py), each filed
under its reader's key; any other query costs nothing. Waiters for the end of a query (endings.py)
observe every object whole as it arrives, before it is cut down.
"""

from __future__ import annotations

from typing import Any

from dpkube.api.services.history import HISTORY_INDEX, archive_key, archived
from dpkube.api.services.quotas import IN_FLIGHT_INDEX, in_flight_key, unfinished
from dpkube.k8s.client import KubeClient
from dpkube.k8s.informer import Informer
from dpkube.models.kinds import DPQUERY


def kept(query: dict[str, Any]) -> dict[str, Any] | None:
    """An unfinished query's user, a succeeded query's archive entry, or nothing."""
    return unfinished(query) or archived(query)


def query_feed(client: KubeClient, namespace: str, watch_timeout_seconds: int = 60) -> Informer:
    """The view of `namespace`'s DPQueries that in-flight counts, history and waiters share."""
    return Informer(client, DPQUERY.api_path(namespace), watch_timeout_seconds=watch_timeout_seconds,
                    transform=kept, indexes={IN_FLIGHT_INDEX: in_flight_key, HISTORY_INDEX: archive_key})
