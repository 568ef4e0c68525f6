"""What the node agent asks the runner's zygote for: one container's process, forked instead of exec'd."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

RUNNER_MODULE = "dpkube.runner"
"""The module a zygote runs in every child: a container of any other command is exec'd."""
SPAWN_REQUEST_LIMIT = 1 << 20
"""Bytes of one spawn request (its command line and environment), checked before it is parsed."""


class SpawnRequest(BaseModel):
    """One container: `python -m dpkube.runner ARGS` with this environment, folder, log and memory limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    args: list[str]
    env: dict[str, str]
    cwd: str
    log: str
    address_space: int | None = Field(default=None, gt=0)
