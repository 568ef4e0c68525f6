"""A warm pool follows demand (its floor when idle, plus what was claimed lately, never past its ceiling), and
its ready pods are those polling, or about to poll again."""

from __future__ import annotations

import asyncio
import time

from dpkube.k8s.client import Conflict
from dpkube.k8s.pods import QUERY_UID_LABEL
from dpkube.models.queue import QueueSpec
from dpkube.operator.podkeys import PodKeys
from dpkube.operator.settings import OperatorSettings
from dpkube.operator.warm import DEMAND_WINDOW, REPOLL_GRACE, WarmPools, pods_to_start

SPEC = QueueSpec(warm_pods=2, warm_pods_max=5)


def pools() -> WarmPools:
    return WarmPools(client=None, settings=OperatorSettings(), keys=PodKeys())  # type: ignore[arg-type]


def test_an_idle_pool_keeps_its_floor() -> None:
    assert pools().size("q", SPEC, now=1000.0) == 2


def test_a_pool_grows_by_its_recent_claims_up_to_its_ceiling() -> None:
    warm = pools()
    warm._claims["q"].extend([990.0, 995.0])
    assert warm.size("q", SPEC, now=1000.0) == 4
    warm._claims["q"].extend([996.0, 997.0, 998.0])
    assert warm.size("q", SPEC, now=1000.0) == 5


def test_claims_older_than_the_window_are_forgotten() -> None:
    warm = pools()
    warm._claims["q"].extend([100.0, 101.0])
    assert warm.size("q", SPEC, now=101.0 + DEMAND_WINDOW + 1) == 2


def test_without_a_ceiling_a_pool_stays_at_its_size() -> None:
    warm = pools()
    warm._claims["q"].extend([999.0] * 10)
    assert warm.size("q", QueueSpec(warm_pods=3), now=1000.0) == 3


async def polled_once(warm: WarmPools, pod: str = "p") -> None:
    """`pod` of pool q polled and its poll timed out."""
    warm._pool_of[("ns", pod)] = "q"
    assert not await warm.wait_for_query("ns", pod, 0.0)


async def test_a_polling_pod_is_ready() -> None:
    warm = pools()
    warm._pool_of[("ns", "p")] = "q"
    polling = asyncio.create_task(warm.wait_for_query("ns", "p", 5.0))
    await asyncio.sleep(0)
    assert warm.ready("q", "ns") == ["p"]
    polling.cancel()


async def test_a_pod_between_two_polls_is_still_ready() -> None:
    warm = pools()
    await polled_once(warm)
    assert warm.ready("q", "ns") == ["p"] and warm.ready_count("q") == 1


async def test_a_pod_that_does_not_poll_again_within_the_grace_is_not_ready() -> None:
    warm = pools()
    await polled_once(warm)
    assert warm._idle("q", now=time.monotonic() + REPOLL_GRACE) == []


async def test_a_claimed_pod_is_not_ready() -> None:
    warm = pools()
    await polled_once(warm)
    warm._claimed.add(("ns", "p"))
    assert warm.ready("q", "ns") == []


def test_a_pool_short_of_many_pods_starts_only_as_many_as_may_import_at_once() -> None:
    assert pods_to_start(wanted=16, idle=2, warming=0, at_once=2) == 2


def test_a_pool_whose_pods_are_still_importing_starts_none_more() -> None:
    assert pods_to_start(wanted=16, idle=4, warming=2, at_once=2) == 0


def test_a_pool_never_starts_more_than_it_wants() -> None:
    assert pods_to_start(wanted=3, idle=2, warming=0, at_once=8) == 1
    assert pods_to_start(wanted=2, idle=5, warming=0, at_once=8) == 0


class OnePod:
    """The API server's view of one warm pod: writes are conditioned on its resourceVersion, and its node
    writes its status (moving that version) `node_writes` times, just after each read."""

    def __init__(self, node_writes: int = 0, taken_by: str | None = None) -> None:
        self.version = 1
        self.labels: dict[str, str] = {} if taken_by is None else {QUERY_UID_LABEL: taken_by}
        self.node_writes = node_writes

    async def get(self, path: str) -> dict:
        pod = {"metadata": {"name": "p", "resourceVersion": str(self.version), "labels": dict(self.labels)}}
        if self.node_writes:
            self.node_writes -= 1
            self.version += 1
        return pod

    async def patch(self, path: str, body: dict) -> dict:
        if body["metadata"]["resourceVersion"] != str(self.version):
            raise Conflict(409, "Conflict", "the object has been modified")
        self.labels.update(body["metadata"]["labels"])
        self.version += 1
        return {}


QUERY = {"metadata": {"namespace": "ns", "name": "hot", "uid": "u-1"}, "spec": {}}


async def claiming(pod: OnePod) -> str | None:
    warm = WarmPools(client=pod, settings=OperatorSettings(), keys=PodKeys())  # type: ignore[arg-type]
    await polled_once(warm)
    return await warm.claim(QUERY, "q")


async def test_a_claim_survives_the_node_writing_the_pods_status_meanwhile() -> None:
    pod = OnePod(node_writes=1)
    assert await claiming(pod) == "p"
    assert pod.labels[QUERY_UID_LABEL] == "u-1"


async def test_a_pod_another_query_took_is_not_claimed() -> None:
    pod = OnePod(taken_by="u-0")
    assert await claiming(pod) is None
    assert pod.labels[QUERY_UID_LABEL] == "u-0"


async def test_a_pod_whose_version_never_settles_is_given_up() -> None:
    pod = OnePod(node_writes=100)
    assert await claiming(pod) is None
    assert QUERY_UID_LABEL not in pod.labels


class ListedPod(OnePod):
    """One warm pod that its pool's upkeep lists; the node writes its status `node_writes` times after the
    listing (before the claim). Reads are counted."""

    def __init__(self, node_writes: int = 0) -> None:
        super().__init__()
        self.writes_after_listing = node_writes
        self.reads = 0

    async def list(self, path: str, label_selector: str | None = None) -> dict:
        listed = {"items": [{"metadata": {"name": "p", "resourceVersion": str(self.version)},
                             "status": {"phase": "Running"}}]}
        self.version += self.writes_after_listing
        return listed

    async def get(self, path: str) -> dict:
        self.reads += 1
        return await super().get(path)


async def claiming_after_upkeep(pod: ListedPod) -> str | None:
    warm = WarmPools(client=pod, settings=OperatorSettings(), keys=PodKeys())  # type: ignore[arg-type]
    await polled_once(warm)
    await warm._keep_pool("q", "ns", QueueSpec(warm_pods=1))
    return await warm.claim(QUERY, "q")


async def test_a_pod_claimed_at_the_version_its_pool_listed_is_not_read_again() -> None:
    pod = ListedPod()
    assert await claiming_after_upkeep(pod) == "p"
    assert pod.labels[QUERY_UID_LABEL] == "u-1" and pod.reads == 0


async def test_a_pod_whose_listed_version_went_stale_is_read_and_claimed() -> None:
    pod = ListedPod(node_writes=1)
    assert await claiming_after_upkeep(pod) == "p"
    assert pod.labels[QUERY_UID_LABEL] == "u-1" and pod.reads == 1
