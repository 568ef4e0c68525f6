"""A query file, as users write them: a DPQuery manifest (YAML/JSON), or a Lomas request body (JSON).

Both become one `QueryFile`, which can be sent to a facade route (as Lomas would) or created as a
DPQuery object (as kubectl would); the Lomas body needs `--library` since it does not name one.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dpkube.models.crd import API_VERSION
from dpkube.models.dpquery import PAYLOAD_FIELD, DPQuerySpec, DummySpec, Mode
from dpkube.models.examples import payload_fields
from dpkube.models.kinds import DPQUERY
from dpkube.models.payloads import Library

DUMMY_KEYS = ("dummy_nb_rows", "dummy_seed")


@dataclass
class QueryFile:
    """One query: its library, mode, dataset and payload (snake_case), and any manifest fields to keep."""

    library: Library
    mode: Mode
    dataset: str
    payload: dict[str, Any]
    dummy: DummySpec | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    extra_spec: dict[str, Any] = field(default_factory=dict)

    def route(self) -> str:
        name = self.library.lomas_name
        return {Mode.QUERY: f"/{name}_query", Mode.DUMMY: f"/dummy_{name}_query",
                Mode.COST: f"/estimate_{name}_cost"}[self.mode]

    def lomas_body(self) -> dict[str, Any]:
        """The body of `route()`: the Lomas client's fields, dummy ones on dummy routes."""
        body = {"dataset_name": self.dataset, **self.payload}
        if self.mode == Mode.COST:
            for key in ("postprocess", "return_model", "condition", "nb_samples"):
                body.pop(key, None)
        if self.mode == Mode.DUMMY:
            dummy = self.dummy or DummySpec()
            body.update(dummy_nb_rows=dummy.rows, dummy_seed=dummy.seed)
        return body

    def manifest(self, user: str, namespace: str) -> dict[str, Any]:
        """The DPQuery object, in `user`'s name (the admission policy checks it is the caller)."""
        spec = DPQuerySpec(user=user, dataset=self.dataset, library=self.library, mode=self.mode,
                           dummy=self.dummy if self.mode == Mode.DUMMY else None,
                           **{PAYLOAD_FIELD[self.library]: self.payload})
        metadata = {key: value for key, value in self.metadata.items()
                    if key in ("name", "generateName", "labels", "annotations")}
        if "name" not in metadata and "generateName" not in metadata:
            metadata["name"] = f"cli-{self.mode.value}-{uuid.uuid4().hex[:12]}"
        return {"apiVersion": API_VERSION, "kind": DPQUERY.kind,
                "metadata": {**metadata, "namespace": namespace},
                "spec": {**self.extra_spec, **spec.to_kube()}}


def load(path: Path, library: str | None = None, mode: str | None = None) -> QueryFile:
    """Read FILE: a manifest when it has `kind: DPQuery`, else a Lomas body (then `library` is required)."""
    text = path.read_text()
    try:
        document = json.loads(text)
    except ValueError:
        document = yaml.safe_load(text)  # YAML 1.1 reads JSON's 1e-05 as a string, so JSON is tried first
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a mapping (a DPQuery manifest or a Lomas request body)")
    if document.get("kind") == DPQUERY.kind:
        return from_manifest(document, mode)
    if library is None:
        raise ValueError(f"{path} is a Lomas body: say which library answers it with --library")
    return from_lomas_body(document, Library(library.replace("_", "-")), Mode(mode or Mode.QUERY))


def from_manifest(document: dict[str, Any], mode: str | None = None) -> QueryFile:
    spec = DPQuerySpec.model_validate({**document.get("spec", {}), "user": document["spec"].get("user") or "-"})
    chosen = Mode(mode) if mode else spec.mode
    extra = {key: value for key, value in document["spec"].items()
             if key in ("experiment", "queue", "dependsOn", "timeout")}
    return QueryFile(spec.library, chosen, spec.dataset, spec.payload.model_dump(mode="json"),
                     spec.dummy, document.get("metadata") or {}, extra)


def from_lomas_body(body: dict[str, Any], library: Library, mode: Mode) -> QueryFile:
    dummy = None
    if any(key in body for key in DUMMY_KEYS):
        dummy = DummySpec(rows=body.get("dummy_nb_rows", 100), seed=body.get("dummy_seed", 42))
    return QueryFile(library, mode, body["dataset_name"], payload_fields(library, body), dummy)
