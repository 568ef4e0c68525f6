"""The ready manifests in examples/ apply with the real kubectl and show in `kubectl get`."""

from __future__ import annotations

import pytest


@pytest.mark.usefixtures("system_namespace")
def test_kubectl_apply_examples_creates_every_object(kubectl) -> None:
    applied = kubectl("apply", "-f", "examples/")
    assert applied.returncode == 0, applied.stderr
    try:
        listed = kubectl("get", "dpq,dpexp", "-o", "name", check=True).stdout.split()
        assert {"dpquery.dpkube.io/penguin-smartnoise-sql", "dpquery.dpkube.io/penguin-opendp",
                "dpquery.dpkube.io/penguin-diffprivlib", "dpquery.dpkube.io/penguin-smartnoise-synth",
                "experiment.dpkube.io/penguin-study"} <= set(listed)
        assert kubectl("get", "dpqueue", "default", "-n", "dpkube-system", check=True).returncode == 0
        grant = kubectl("get", "configmap", "budget-alice-penguin", "-n", "dpkube-system", "-o",
                        "jsonpath={.data.initialEpsilon}", check=True).stdout
        assert grant == "10.0"
    finally:
        kubectl("delete", "dpq", "--all", "--wait=false")
