"""The base every dpkube model derives from: camelCase on the Kubernetes side, snake_case in Python.

One model serves three audiences: the CRD schema (camelCase aliases, field docstrings as
descriptions), the REST bodies (Lomas' snake_case wire names are accepted too) and the runner's input.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class KubeModel(BaseModel):
    """A model that reads and writes Kubernetes-style camelCase and accepts snake_case field names."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="forbid",
        frozen=False,
    )

    def to_kube(self) -> dict[str, Any]:
        """The object as it is stored in the API server: camelCase, without unset optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
