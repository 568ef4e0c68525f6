"""Builders of custom-resource bodies, so tests say only what matters to them."""

from __future__ import annotations

from typing import Any

SQL_COUNT = {"queryStr": "SELECT COUNT(*) AS NB_ROW FROM df", "epsilon": 0.1, "delta": 1e-5}


def dpquery(name: str, user: str = "alice", **spec: Any) -> dict[str, Any]:
    body = {"user": user, "dataset": "PENGUIN", "library": "smartnoise-sql", "smartnoiseSql": SQL_COUNT, **spec}
    return {"apiVersion": "dpkube.io/v1alpha1", "kind": "DPQuery", "metadata": {"name": name}, "spec": body}


def queue(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "dpkube.io/v1alpha1", "kind": "Queue", "metadata": {"name": name}, "spec": spec}


def experiment(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "dpkube.io/v1alpha1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}
