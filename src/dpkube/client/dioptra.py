"""The Dioptra v0 client: the stock client's methods and routes, with an optional API token.

Like the stock client it returns every reply's JSON, error bodies included (`{"message": ...}`),
so scripts written for Dioptra keep testing `"Not Found" in reply["message"]`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

ADDRESS_VARIABLE = "DIOPTRA_RESTAPI_URI"


class DioptraClient:
    """Connects to `<address>/api/<api_version>`; the address defaults to $DIOPTRA_RESTAPI_URI."""

    def __init__(self, address: str | None = None, api_version: str = "v0", token: str | None = None, *,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        address = address or os.environ.get(ADDRESS_VARIABLE)
        if not address:
            raise ValueError(f"no address given and ${ADDRESS_VARIABLE} is not set")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base = f"{address.rstrip('/')}/api/{api_version}"
        self.http = httpx.Client(headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> DioptraClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, route: str, **kwargs: Any) -> Any:
        return self.http.request(method, f"{self.base}/{route}", **kwargs).json()

    def list_experiments(self) -> list[dict[str, Any]]:
        return self._call("GET", "experiment/")

    def register_experiment(self, name: str) -> dict[str, Any]:
        return self._call("POST", "experiment/", json={"name": name})

    def get_experiment_by_id(self, id: int) -> dict[str, Any]:
        return self._call("GET", f"experiment/{id}")

    def get_experiment_by_name(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"experiment/name/{name}")

    def list_queues(self) -> list[dict[str, Any]]:
        return self._call("GET", "queue/")

    def register_queue(self, name: str = "tensorflow_cpu") -> dict[str, Any]:
        return self._call("POST", "queue/", json={"name": name})

    def get_queue_by_id(self, id: int) -> dict[str, Any]:
        return self._call("GET", f"queue/{id}")

    def get_queue_by_name(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"queue/name/{name}")

    def lock_queue(self, name: str) -> dict[str, Any]:
        return self._call("PUT", f"queue/name/{name}/lock")

    def unlock_queue(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"queue/name/{name}/lock")

    def list_jobs(self) -> list[dict[str, Any]]:
        return self._call("GET", "job/")

    def get_job_by_id(self, id: str) -> dict[str, Any]:
        return self._call("GET", f"job/{id}")

    def submit_job(self, workflows_file: str | Path, experiment_name: str, entry_point: str,
                   entry_point_kwargs: str | None = None, depends_on: str | None = None,
                   queue: str = "tensorflow_cpu", timeout: str = "24h") -> dict[str, Any]:
        """Upload the workflow archive and create a job (a DPQuery) in the queue."""
        fields = {"experimentName": experiment_name, "queue": queue, "timeout": timeout, "entryPoint": entry_point}
        if entry_point_kwargs is not None:
            fields["entryPointKwargs"] = entry_point_kwargs
        if depends_on is not None:
            fields["dependsOn"] = depends_on
        path = Path(workflows_file)
        with path.open("rb") as handle:
            return self._call("POST", "job/", data=fields, files={"workflow": (path.name, handle)})

    def list_all_task_plugins(self) -> list[dict[str, Any]]:
        return self._call("GET", "taskPlugin/")

    def list_builtin_task_plugins(self) -> list[dict[str, Any]]:
        return self._call("GET", "taskPlugin/dioptra_builtins")

    def list_custom_task_plugins(self) -> list[dict[str, Any]]:
        return self._call("GET", "taskPlugin/dioptra_custom")

    def get_builtin_task_plugin(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"taskPlugin/dioptra_builtins/{name}")

    def get_custom_task_plugin(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"taskPlugin/dioptra_custom/{name}")

    def upload_custom_plugin_package(self, custom_plugin_name: str, custom_plugin_file: str | Path,
                                     collection: str = "dioptra_custom") -> dict[str, Any]:
        path = Path(custom_plugin_file)
        with path.open("rb") as handle:
            return self._call("POST", "taskPlugin/", data={"taskPluginName": custom_plugin_name,
                                                           "collection": collection},
                              files={"taskPluginFile": (path.name, handle)})

    def delete_custom_task_plugin(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"taskPlugin/dioptra_custom/{name}")
