"""Which of a pod's volumes the node agent gives what its mounts ask, and which it reports unmounted."""

from __future__ import annotations

from typing import Any

from dpkube.nodeagent.worker import honoured, scratch_volume

EMPTY = {"name": "scratch", "emptyDir": {"sizeLimit": "2Gi"}}
TOKEN = {"name": "kube-api-access-abcde", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}


def container(*mounts: tuple[str, str]) -> dict[str, Any]:
    return {"name": "main", "volumeMounts": [{"name": name, "mountPath": path} for name, path in mounts]}


def test_an_empty_dir_mounted_at_tmp_is_the_containers_scratch_volume() -> None:
    assert scratch_volume({"volumes": [EMPTY]}, container(("scratch", "/tmp"))) == "scratch"


def test_a_volume_at_tmp_that_is_no_empty_dir_is_no_scratch_volume() -> None:
    config = {"name": "scratch", "configMap": {"name": "settings"}}
    assert scratch_volume({"volumes": [config]}, container(("scratch", "/tmp"))) is None


def test_an_empty_dir_mounted_at_tmp_only_is_honoured() -> None:
    assert honoured(EMPTY, [container(("scratch", "/tmp")), container(("scratch", "/tmp"))])


def test_an_empty_dir_also_mounted_elsewhere_is_not_honoured() -> None:
    assert not honoured(EMPTY, [container(("scratch", "/tmp")), container(("scratch", "/data"))])


def test_the_service_account_token_is_honoured() -> None:
    assert honoured(TOKEN, [container()])


def test_other_volumes_are_not_honoured() -> None:
    claim = {"name": "data", "persistentVolumeClaim": {"claimName": "penguins"}}
    assert not honoured(claim, [container(("data", "/data"))])
