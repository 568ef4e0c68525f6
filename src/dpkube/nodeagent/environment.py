"""A container's environment as the kubelet builds it: envFrom, then env (with `$(VAR)` expansion), over
the service variables; references to missing Secrets, ConfigMaps or keys fail unless marked optional.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dpkube.k8s.client import KubeClient, NotFound, core_path
from dpkube.nodeagent.errors import ContainerConfigError
from dpkube.nodeagent.expansion import expand
from dpkube.nodeagent.quantity import parse_quantity

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


@dataclass
class PodReferences:
    """Secrets and ConfigMaps of one pod's namespace, each fetched at most once per container start."""

    client: KubeClient
    namespace: str
    _cache: dict[tuple[str, str], dict[str, str] | None] = field(default_factory=dict)

    async def data(self, kind: str, name: str) -> dict[str, str] | None:
        """The object's data as text, or None when it does not exist."""
        key = (kind, name)
        if key not in self._cache:
            try:
                obj = await self.client.get(core_path(kind, self.namespace, name))
            except NotFound:
                self._cache[key] = None
            else:
                self._cache[key] = _as_text(kind, obj)
        return self._cache[key]


def _as_text(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    if kind == "secrets":
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
    binary = {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("binaryData") or {}).items()}
    return {**binary, **(obj.get("data") or {})}


_LABEL = {"secrets": "Secret", "configmaps": "ConfigMap"}
_NOT_FOUND = {"secrets": 'secret "{}" not found', "configmaps": 'configmap "{}" not found'}


@dataclass(frozen=True)
class PodFacts:
    """What fieldRef and resourceFieldRef may read that the pod object does not carry yet."""

    pod_ip: str
    host_ip: str
    node_cpu: Decimal
    node_memory: Decimal


async def container_environment(
    pod: Mapping[str, Any], container: Mapping[str, Any], references: PodReferences,
    facts: PodFacts, service_env: Mapping[str, str],
) -> dict[str, str]:
    """The variables the container declares, over `service_env`; raises ContainerConfigError."""
    declared: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind, ref = _env_from_ref(source)
        data = await references.data(kind, ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(_NOT_FOUND[kind].format(ref["name"]))
        prefix = source.get("prefix", "")
        declared.update({prefix + k: v for k, v in data.items() if _ENV_NAME.match(prefix + k)})
    for var in container.get("env") or []:
        if "valueFrom" in var:
            value = await _value_from(var["valueFrom"], pod, container, references, facts)
            if value is None:
                continue
        else:
            value = expand(var.get("value", ""), {**service_env, **declared})
        declared[var["name"]] = value
    return {**service_env, **declared}


def _env_from_ref(source: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    if "secretRef" in source:
        return "secrets", source["secretRef"]
    return "configmaps", source["configMapRef"]


async def _value_from(
    source: Mapping[str, Any], pod: Mapping[str, Any], container: Mapping[str, Any],
    references: PodReferences, facts: PodFacts,
) -> str | None:
    if "fieldRef" in source:
        return _field_value(source["fieldRef"]["fieldPath"], pod, facts)
    if "resourceFieldRef" in source:
        return _resource_value(source["resourceFieldRef"], pod, container, facts)
    kind, ref = ("secrets", source["secretKeyRef"]) if "secretKeyRef" in source else (
        "configmaps", source["configMapKeyRef"])
    data = await references.data(kind, ref["name"])
    if data is not None and ref["key"] in data:
        return data[ref["key"]]
    if ref.get("optional"):
        return None
    if data is None:
        raise ContainerConfigError(_NOT_FOUND[kind].format(ref["name"]))
    raise ContainerConfigError(
        f"couldn't find key {ref['key']} in {_LABEL[kind]} {references.namespace}/{ref['name']}"
    )


def _field_value(path: str, pod: Mapping[str, Any], facts: PodFacts) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if path in simple:
        return str(simple[path])
    if match := _SUBSCRIPT.match(path):
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _resource_value(
    ref: Mapping[str, Any], pod: Mapping[str, Any], container: Mapping[str, Any], facts: PodFacts,
) -> str:
    target = container
    if ref.get("containerName"):
        target = next((c for c in pod["spec"]["containers"] if c["name"] == ref["containerName"]), container)
    section, _, resource = ref["resource"].partition(".")
    declared = ((target.get("resources") or {}).get(section) or {}).get(resource)
    if declared is None and resource in ("cpu", "memory"):
        declared = facts.node_cpu if resource == "cpu" else facts.node_memory
        if section == "requests":
            declared = Decimal(0)
    if declared is None:
        raise ContainerConfigError(f"unsupported resourceFieldRef resource {ref['resource']!r}")
    value = parse_quantity(declared) / parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(value))
