"""The chart installed into a control plane of its own, and the chart's containers run as local processes."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from dpkube.controlplane import binaries
from dpkube.controlplane.local import LocalControlPlane
from dpkube.controlplane.processes import ChildProcess
from dpkube.k8s.client import KubeClient, core_path

REPO = Path(__file__).resolve().parents[2]
RELEASE = "dpkube"
SYSTEM = "dpkube-system"
QUERIES = "dpkube"
OPERATOR_ACCOUNT = "dpkube-operator"
API_ACCOUNT = "dpkube-api"


@dataclass
class Release:
    """What `helm install` made, and where."""

    plane: LocalControlPlane
    manifest: list[dict]
    workdir: Path

    def deployment(self, name: str) -> dict:
        return next(d for d in self.manifest if d["kind"] == "Deployment" and d["metadata"]["name"] == name)

    def account_kubeconfig(self, account: str, token: str) -> Path:
        return self.plane.write_kubeconfig(self.workdir / f"kubeconfig-{account}", account, token=token)


def helm(plane: LocalControlPlane, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "HELM_CACHE_HOME": str(workdir / "helm-cache"),
           "HELM_CONFIG_HOME": str(workdir / "helm-config"), "HELM_DATA_HOME": str(workdir / "helm-data")}
    return subprocess.run([str(binaries.binary("helm")), "--kubeconfig", str(plane.kubeconfig), *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


async def account_token(admin: KubeClient, account: str) -> str:
    """A token of a ServiceAccount, from the TokenRequest API (what a kubelet mounts into the pod)."""
    review = await admin.create(core_path("serviceaccounts", SYSTEM, account) + "/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})
    return review["status"]["token"]


def container_env(deployment: dict, overrides: dict[str, str]) -> dict[str, str]:
    """The environment the chart gives a Deployment's container (field references become overrides)."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    return {**env, **overrides}


@dataclass
class Platform:
    """The chart's operator and facade as local processes, under the chart's identities."""

    url: str
    operator: ChildProcess
    facade: ChildProcess
