"""The pod's service-account token, written where a local process can read it.

A real kubelet mounts the projected `kube-api-access-*` volume at /var/run/secrets/...; a local process
cannot see that path, so the agent writes `token`, `ca.crt` and `namespace` into a per-pod folder and names
it in DPKUBE_SERVICEACCOUNT_DIR (which `KubeConfig.in_cluster` honours). The admission plugin adds that
volume only when neither the pod nor its ServiceAccount opts out (`automountServiceAccountToken: false`),
so the volume's presence is the kubelet's, and our, signal to mount a token.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpkube.k8s.client import KubeClient, core_path

TOKEN_EXPIRATION_SECONDS = 3600
REFRESH_AT_FRACTION = 0.8  # the kubelet rotates a projected token once 80% of its lifetime has passed


def token_projection(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The serviceAccountToken source of the pod's projected volume, if it has one."""
    for volume in pod["spec"].get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "serviceAccountToken" in source:
                token: Mapping[str, Any] = source["serviceAccountToken"]
                return token
    return None


def is_token_volume(volume: Mapping[str, Any]) -> bool:
    """The volume the ServiceAccount admission plugin adds (token, root CA, namespace)."""
    sources = (volume.get("projected") or {}).get("sources") or []
    return any("serviceAccountToken" in s for s in sources) or volume["name"].startswith("kube-api-access-")


class ServiceAccountFolder:
    """token, ca.crt and namespace for one pod, refreshed before the token expires."""

    def __init__(self, client: KubeClient, pod: Mapping[str, Any], folder: Path, ca_file: str | None):
        self.client = client
        self.pod = pod
        self.folder = folder
        self.ca_file = ca_file
        self.refresh_at = 0.0  # monotonic

    async def write(self) -> None:
        """Request a token bound to the pod (TokenRequest API) and write the folder's three files."""
        meta = self.pod["metadata"]
        projection = token_projection(self.pod) or {}
        spec: dict[str, Any] = {
            "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
        }
        if projection.get("audience"):
            spec["audiences"] = [projection["audience"]]
        account = self.pod["spec"].get("serviceAccountName") or "default"
        response = await self.client.create(
            core_path("serviceaccounts", meta["namespace"], account) + "/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_atomically(self.folder / "token", response["status"]["token"])
        _write_atomically(self.folder / "namespace", meta["namespace"])
        if self.ca_file:
            _write_atomically(self.folder / "ca.crt", Path(self.ca_file).read_text())
        lifetime = response["spec"].get("expirationSeconds") or TOKEN_EXPIRATION_SECONDS
        self.refresh_at = time.monotonic() + lifetime * REFRESH_AT_FRACTION

    def remove(self) -> None:
        """Unmount, as the kubelet does when the pod's containers have stopped."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(partial, path)
