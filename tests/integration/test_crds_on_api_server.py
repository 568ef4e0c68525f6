"""The CRDs on a real kube-apiserver: the API server itself enforces the schema and CEL rules."""

from __future__ import annotations

import json

import pytest

from dpkube.k8s.client import Invalid, KubeClient
from dpkube.models.kinds import DPQUERY

SQL = {"queryStr": "SELECT COUNT(*) AS NB_ROW FROM df", "epsilon": 0.1, "delta": 1e-5}


def dpquery(name: str, **spec: object) -> dict:
    base = {"user": "alice", "dataset": "PENGUIN", "library": "smartnoise-sql", "smartnoiseSql": SQL}
    return {"apiVersion": "dpkube.io/v1alpha1", "kind": "DPQuery", "metadata": {"name": name},
            "spec": {**base, **spec}}


async def test_a_valid_dpquery_is_stored_with_defaults(admin: KubeClient, namespace: str) -> None:
    created = await admin.create(DPQUERY.api_path(namespace), dpquery("ok"))
    assert created["spec"]["mode"] == "query"
    assert created["spec"]["smartnoiseSql"]["postprocess"] is True


async def test_negative_epsilon_is_refused_naming_the_field(admin: KubeClient, namespace: str) -> None:
    with pytest.raises(Invalid) as refused:
        await admin.create(DPQUERY.api_path(namespace), dpquery("neg", smartnoiseSql={**SQL, "epsilon": -1}))
    assert "spec.smartnoiseSql.epsilon" in refused.value.message


async def test_two_payloads_are_refused(admin: KubeClient, namespace: str) -> None:
    with pytest.raises(Invalid) as refused:
        await admin.create(DPQUERY.api_path(namespace), dpquery("two", opendp={"opendpJson": "{}"}))
    assert "exactly one payload must be set" in refused.value.message


async def test_payload_of_another_library_is_refused(admin: KubeClient, namespace: str) -> None:
    body = dpquery("other", library="opendp")
    with pytest.raises(Invalid) as refused:
        await admin.create(DPQUERY.api_path(namespace), body)
    assert "library opendp needs the opendp payload" in refused.value.message


async def test_delta_of_one_is_refused(admin: KubeClient, namespace: str) -> None:
    with pytest.raises(Invalid) as refused:
        await admin.create(DPQUERY.api_path(namespace), dpquery("d1", smartnoiseSql={**SQL, "delta": 1}))
    assert "spec.smartnoiseSql.delta" in refused.value.message


async def test_spec_cannot_change_after_creation(admin: KubeClient, namespace: str) -> None:
    await admin.create(DPQUERY.api_path(namespace), dpquery("frozen"))
    with pytest.raises(Invalid) as refused:
        await admin.patch(DPQUERY.api_path(namespace, "frozen"), {"spec": {"smartnoiseSql": {"epsilon": 5}}})
    assert "spec is immutable" in refused.value.message


async def test_status_is_written_only_through_its_subresource(admin: KubeClient, namespace: str) -> None:
    await admin.create(DPQUERY.api_path(namespace), dpquery("sub"))
    await admin.patch(DPQUERY.api_path(namespace, "sub"), {"status": {"phase": "Succeeded"}})
    assert (await admin.get(DPQUERY.api_path(namespace, "sub"))).get("status", {}).get("phase") != "Succeeded"
    await admin.patch(DPQUERY.api_path(namespace, "sub") + "/status", {"status": {"phase": "Succeeded"}})
    assert (await admin.get(DPQUERY.api_path(namespace, "sub")))["status"]["phase"] == "Succeeded"


def test_kubectl_refuses_an_invalid_manifest_with_the_field_name(kubectl, tmp_path, namespace: str) -> None:
    manifest = tmp_path / "bad.json"
    manifest.write_text(json.dumps(dpquery("bad", smartnoiseSql={**SQL, "epsilon": -1}, opendp={"opendpJson": "{}"})))
    result = kubectl("apply", "-n", namespace, "-f", str(manifest))
    assert result.returncode != 0
    assert "spec.smartnoiseSql.epsilon" in result.stderr
    assert "exactly one payload must be set" in result.stderr


def test_kubectl_get_dpq_prints_the_printer_columns(kubectl, tmp_path, namespace: str) -> None:
    manifest = tmp_path / "q.json"
    manifest.write_text(json.dumps(dpquery("shown")))
    kubectl("apply", "-n", namespace, "-f", str(manifest), check=True)
    header, row = kubectl("get", "dpq", "-n", namespace, check=True).stdout.splitlines()[:2]
    assert header.split() == ["NAME", "USER", "DATASET", "LIBRARY", "PHASE", "POSITION", "EPS-SPENT", "AGE"]
    assert row.split()[:4] == ["shown", "alice", "PENGUIN", "smartnoise-sql"]


def test_kubectl_explain_documents_the_fields(kubectl) -> None:
    out = kubectl("explain", "dpquery.spec.smartnoiseSql.epsilon", check=True).stdout
    assert "Epsilon given to each mechanism" in out
