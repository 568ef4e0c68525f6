"""Generates CustomResourceDefinitions from the pydantic models (kopf does not; kopf#524).

Pydantic's JSON Schema is turned into a Kubernetes structural schema: references inlined, optional
fields made plain (not `anyOf` with null), exclusive bounds in OpenAPI v3.0 form, free-form values
marked `x-kubernetes-preserve-unknown-fields`, and field docstrings kept as descriptions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from dpkube.models.base import KubeModel

GROUP = "dpkube.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

_DROP_KEYS = {"title", "examples"}


@dataclass(frozen=True)
class PrinterColumn:
    """One column of `kubectl get`."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class Kind:
    """A custom resource kind: its names, its spec and status models, and how kubectl shows it."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[KubeModel]
    status: type[KubeModel]
    description: str
    printer_columns: tuple[PrinterColumn, ...] = ()
    categories: tuple[str, ...] = ("dpkube",)
    selectable_fields: tuple[str, ...] = ()
    """JSON paths usable in field selectors (`kubectl get dpq --field-selector status.phase=Succeeded`)."""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    def api_path(self, namespace: str | None, name: str | None = None) -> str:
        """The REST path of this kind's collection (or one object) in a namespace; None: in every namespace."""
        base = (f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{self.plural}" if namespace
                else f"/apis/{GROUP}/{VERSION}/{self.plural}")
        return f"{base}/{name}" if name else base

    def crd(self) -> dict[str, Any]:
        """The CustomResourceDefinition manifest."""
        columns = [
            {k: v for k, v in {
                "name": c.name, "type": c.type, "jsonPath": c.json_path,
                "description": c.description or None, "priority": c.priority or None,
            }.items() if v is not None}
            for c in self.printer_columns
        ]
        schema = {
            "type": "object",
            "description": self.description,
            "required": ["spec"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": structural_schema(self.spec),
                "status": structural_schema(self.status),
            },
        }
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": self.crd_name},
            "spec": {
                "group": GROUP,
                "names": {
                    "kind": self.kind,
                    "listKind": f"{self.kind}List",
                    "plural": self.plural,
                    "singular": self.singular,
                    "shortNames": list(self.short_names),
                    "categories": list(self.categories),
                },
                "scope": "Namespaced",
                "versions": [{
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        *columns,
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": schema},
                    **({"selectableFields": [{"jsonPath": path} for path in self.selectable_fields]}
                       if self.selectable_fields else {}),
                }],
            },
        }


def structural_schema(model: type[KubeModel]) -> dict[str, Any]:
    """The model's JSON Schema, rewritten into a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _convert(raw, definitions)


def _resolve(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = copy.deepcopy(definitions[node["$ref"].rsplit("/", 1)[-1]])
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _convert(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(dict(node), definitions)
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"union of {len(options)} types cannot be a structural schema: {options}")
        merged = _resolve(dict(options[0]), definitions)
        node = {**merged, **node}
    out: dict[str, Any] = {}
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out["x-kubernetes-preserve-unknown-fields"] = True
        if "description" in node:
            out["description"] = node["description"]
        if node.get("type") == "object":
            out["type"] = "object"
        return out
    for key, value in node.items():
        if key in _DROP_KEYS:
            continue
        if key == "properties":
            out["properties"] = {name: _convert(prop, definitions) for name, prop in value.items()}
        elif key == "items":
            out["items"] = _convert(value, definitions)
        elif key == "additionalProperties":
            if value is False:
                continue  # the API server prunes unknown fields anyway
            out["additionalProperties"] = (
                _convert(value, definitions) if isinstance(value, dict) and value else
                {"x-kubernetes-preserve-unknown-fields": True}
            )
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "format" and value == "date-time":
            out["format"] = "date-time"
        elif key == "maxProperties" or key == "minProperties":
            out[key] = value
        elif key == "default":
            if value is not None:
                out["default"] = value
        else:
            out[key] = value
    if "type" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out
