"""Which secret and which query each runner pod holds, as this process made or assigned them.

The claim channel authenticates a pod from here without reading it; a pod made before a restart is
read once and then remembered. A pod's secret never changes; its query is set once, when it is made
(cold) or claimed (warm).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PodKey:
    token: str
    uid: str | None


class PodKeys:
    """Keys by (namespace, pod), bounded in number."""

    def __init__(self, limit: int = 100_000) -> None:
        self._keys: dict[tuple[str, str], PodKey] = {}
        self.limit = limit

    def remember(self, namespace: str, pod: str, token: str, uid: str | None) -> None:
        if len(self._keys) >= self.limit:
            self._keys.pop(next(iter(self._keys)))
        self._keys[(namespace, pod)] = PodKey(token, uid)

    def claimed(self, namespace: str, pod: str, uid: str) -> None:
        key = self._keys.get((namespace, pod))
        if key is not None:
            key.uid = uid

    def get(self, namespace: str, pod: str) -> PodKey | None:
        return self._keys.get((namespace, pod))

    def forget(self, namespace: str, pod: str) -> None:
        self._keys.pop((namespace, pod), None)
