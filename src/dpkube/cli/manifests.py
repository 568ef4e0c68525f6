"""Renders the generated manifests (`make crds`): CRDs into `crds/`, the ready examples into `examples/`, and
the Helm chart's generated parts (its CRDs, values.yaml, values.schema.json, RBAC rules, demo datasets).

All are generated from the models, the access policy and the seed examples; a test fails when any is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from dpkube.api.services.dioptra.ids import COUNTERS
from dpkube.k8s import policy
from dpkube.k8s.demo import demo_dataset_manifests
from dpkube.k8s.tokens import TOKEN_SECRET
from dpkube.models import chart, examples
from dpkube.models.crd import API_VERSION
from dpkube.models.dpquery import DPQuerySpec, Mode
from dpkube.models.experiment import ExperimentSpec
from dpkube.models.kinds import KINDS
from dpkube.models.payloads import PAYLOAD_TYPES, Library
from dpkube.models.queue import QueueSpec, Resources

SYSTEM_NAMESPACE = "dpkube-system"

HEADER = "# Generated from the pydantic models by `make crds`; do not edit.\n"


def render_crds() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    return {
        f"{kind.crd_name}.yaml": HEADER + yaml.safe_dump(kind.crd(), sort_keys=False, width=100)
        for kind in KINDS
    }


def _document(kind: str, name: str, spec: dict[str, Any], namespace: str | None = None, comment: str = "") -> str:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    body = {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}
    return HEADER + (f"# {comment}\n" if comment else "") + yaml.safe_dump(body, sort_keys=False, width=100)


def render_examples() -> dict[str, str]:
    """File name -> YAML of the ready examples: a Queue, an Experiment, a budget grant, one query per library."""
    files = {
        "00-queue.yaml": _document("Queue", "default", QueueSpec(
            display_name="default", max_concurrent=4,
            resources=Resources(requests={"cpu": "250m", "memory": "512Mi"}, limits={"cpu": "2", "memory": "4Gi"}),
        ).to_kube(), SYSTEM_NAMESPACE, "Queues live in the operator's namespace; admins create them."),
        "01-experiment.yaml": _document("Experiment", "penguin-study", ExperimentSpec(
            display_name="penguin_study", description="DP statistics and models on the PENGUIN dataset.",
        ).to_kube()),
    }
    grant = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "budget-alice-penguin", "namespace": SYSTEM_NAMESPACE,
                     "labels": {"dpkube.io/budget": "grant"}},
        "data": {"user": "alice", "dataset": "PENGUIN", "initialEpsilon": "10.0", "initialDelta": "0.005",
                 "mayQuery": "true"},
    }
    files["02-grant-alice-penguin.yaml"] = (
        HEADER + "# A budget grant: alice may spend epsilon 10 and delta 0.005 on PENGUIN.\n"
        + yaml.safe_dump(grant, sort_keys=False)
    )
    for index, library in enumerate(Library, start=3):
        payload = PAYLOAD_TYPES[library].model_validate(examples.payload_fields(library, examples.QUERIES[library]))
        spec = DPQuerySpec.model_validate({
            "user": "alice", "dataset": examples.PENGUIN, "library": library,
            "mode": Mode.QUERY, "experiment": "penguin-study", "queue": "default", "timeout": "10m",
            library.lomas_name: payload,
        })
        files[f"{index:02d}-dpquery-{library.value}.yaml"] = _document(
            "DPQuery", f"penguin-{library.value}", spec.to_kube(),
            comment=f"The seed's {library.value} example on PENGUIN, as a DPQuery.",
        )
    return files


def write_examples(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_examples().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD into `directory`, removing stale generated files."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render_crds()
    for stale in directory.glob("*.dpkube.io.yaml"):
        if stale.name not in rendered:
            stale.unlink()
    written = []
    for name, text in rendered.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


CHART = Path("charts/dpkube")


def render_chart() -> dict[str, str]:
    """Path inside the chart -> text of every generated file of the Helm chart."""
    rbac = {
        "user": policy.user_role()["rules"],
        "admin": policy.admin_role()["rules"],
        "operator": policy.operator_rules(),
        "operatorSystem": policy.operator_system_rules(),
        "api": policy.api_rules(),
        "apiSystem": policy.api_system_rules(TOKEN_SECRET, COUNTERS),
        "apiCluster": policy.api_cluster_rules(),
    }
    datasets = [{"name": item["metadata"]["name"], "spec": item["spec"]} for item in demo_dataset_manifests("")]
    files = {f"crds/{name}": text for name, text in render_crds().items()}
    files["values.yaml"] = HEADER + chart.values_yaml()
    files["values.schema.json"] = json.dumps(chart.values_schema(), indent=2) + "\n"
    files["files/rbac.yaml"] = HEADER + yaml.safe_dump(rbac, sort_keys=False, width=100)
    admission = {"queryOwner": policy.query_owner_policy([])[0]["spec"],
                 "grantGuard": policy.grant_guard_policy([])[0]["spec"]}
    files["files/admission.yaml"] = HEADER + yaml.safe_dump(admission, sort_keys=False, width=100)
    files["files/demo-datasets.yaml"] = HEADER + yaml.safe_dump(datasets, sort_keys=False, width=100)
    return files


def write_chart(directory: Path) -> list[Path]:
    """Write the chart's generated files, removing CRD files no model produces any more."""
    rendered = render_chart()
    for stale in (directory / "crds").glob("*.dpkube.io.yaml"):
        if f"crds/{stale.name}" not in rendered:
            stale.unlink()
    written = []
    for name, text in rendered.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for path in [*write_crds(root / "crds"), *write_examples(root / "examples"), *write_chart(root / CHART)]:
        print(path)
