"""Operator tests: objects created in the test's namespace (the platform fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from dpkube.k8s.client import KubeClient
from dpkube.models.kinds import QUEUE


@pytest.fixture
async def create(admin: KubeClient, namespace: str, system_namespace: str) -> AsyncIterator[Any]:
    async def make(body: dict[str, Any]) -> dict[str, Any]:
        if body["kind"] == "Queue":
            return await admin.create(QUEUE.api_path(system_namespace), body)
        return await admin.create(f"/apis/dpkube.io/v1alpha1/namespaces/{namespace}/"
                                  f"{'dpqueries' if body['kind'] == 'DPQuery' else 'experiments'}", body)

    yield make
