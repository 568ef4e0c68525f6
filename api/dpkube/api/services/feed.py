"""The facade's one list-and-watch of the DPQueries in its query namespace, however many requests wait.

Its view keeps of each query only what a reader needs: the user of an unfinished one (per-user in-flight
limits, quotas.py), the archive entry of one that succeeded in query mode (history.py) and the small
dashboard entry of every query (dashboard.py), each filed under its reader's key. Waiters for the end of
a query (endings.py) observe every object whole as it arrives, before it is cut down.
"""

from __future__ import annotations

from typing import Any

from dpkube.api.services.dashboard import DASHBOARD_INDEX, dashboard_entry, dashboard_key
from dpkube.api.services.history import HISTORY_INDEX, archive_key, archived
from dpkube.api.services.quotas import IN_FLIGHT_INDEX, in_flight_key, unfinished
from dpkube.k8s.client import KubeClient
from dpkube.k8s.informer import Informer
from dpkube.models.kinds import DPQUERY


def kept(query: dict[str, Any]) -> dict[str, Any] | None:
    """An unfinished query's user, a succeeded query's archive entry, and any query's dashboard entry."""
    entry = dashboard_entry(query)
    parts = [part for part in (unfinished(query), archived(query)) if part is not None]
    if entry is None and not parts:
        return None
    meta = query["metadata"]
    view: dict[str, Any] = {"metadata": {"name": meta["name"], "resourceVersion": meta.get("resourceVersion", "0")}}
    for part in parts:
        view.update(part)
    if entry is not None:
        view["dashboard"] = entry
    return view


def query_feed(client: KubeClient, namespace: str, watch_timeout_seconds: int = 60) -> Informer:
    """The view of `namespace`'s DPQueries that in-flight counts, history, the dashboard and waiters share."""
    return Informer(client, DPQUERY.api_path(namespace), watch_timeout_seconds=watch_timeout_seconds,
                    transform=kept, indexes={IN_FLIGHT_INDEX: in_flight_key, HISTORY_INDEX: archive_key,
                                             DASHBOARD_INDEX: dashboard_key})
