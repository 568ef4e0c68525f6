"""The dpkube node agent: a kubelet (and binding scheduler) for one virtual node, running pods as processes.

For control planes without kubelets (tests, `make dev`): the operator's pods run exactly as they would
on a cluster, only as local processes. `worker` says what is emulated and what is not.
"""

from dpkube.nodeagent.agent import NodeAgent
from dpkube.nodeagent.settings import AgentSettings, MemoryEnforcement

__all__ = ["AgentSettings", "MemoryEnforcement", "NodeAgent"]
