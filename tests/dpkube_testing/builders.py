"""Builders of custom-resource bodies and runner inputs, so tests say only what matters to them."""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_camel

from dpkube.engine.datasets import demo_metadata
from dpkube.models import examples
from dpkube.models.dpquery import PAYLOAD_FIELD
from dpkube.models.payloads import PAYLOAD_TYPES, Library

SQL_COUNT = {"queryStr": "SELECT COUNT(*) AS NB_ROW FROM df", "epsilon": 0.1, "delta": 1e-5}


def runner_input(library: Library = Library.SMARTNOISE_SQL, **changes: Any) -> dict[str, Any]:
    """A runner's input: the seed's private query of `library` on the demo PENGUIN, unless told otherwise."""
    return {
        "library": library.value,
        "mode": "query",
        "payload": examples.query_payload(library),
        "dataset": {"uri": "demo://PENGUIN", "metadata": demo_metadata("PENGUIN").lomas_dict()},
        **changes,
    }


def payload_key(library: Library) -> str:
    """The DPQuery spec key of a library's payload (smartnoiseSql, opendp, ...)."""
    return to_camel(PAYLOAD_FIELD[library])


def seed_payload(library: Library) -> dict[str, Any]:
    """The seed's example payload of a library, as a DPQuery manifest holds it."""
    fields = examples.payload_fields(library, examples.QUERIES[library])
    return PAYLOAD_TYPES[library].model_validate(fields).to_kube()


def dpquery(name: str, user: str = "alice", **spec: Any) -> dict[str, Any]:
    """A DPQuery manifest: the seed's SQL count on PENGUIN unless told otherwise (None drops a key)."""
    if "library" in spec and spec["library"] != "smartnoise-sql" and "smartnoiseSql" not in spec:
        spec["smartnoiseSql"] = None
        library = Library(spec["library"])
        spec.setdefault(payload_key(library), seed_payload(library))
    body = {"user": user, "dataset": "PENGUIN", "library": "smartnoise-sql", "smartnoiseSql": SQL_COUNT, **spec}
    body = {key: value for key, value in body.items() if value is not None}
    return {"apiVersion": "dpkube.io/v1alpha1", "kind": "DPQuery", "metadata": {"name": name}, "spec": body}


def queue(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "dpkube.io/v1alpha1", "kind": "Queue", "metadata": {"name": name}, "spec": spec}


def experiment(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "dpkube.io/v1alpha1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}
