"""A warm pool follows demand (its floor when idle, plus what was claimed lately, never past its ceiling), and
its ready pods are those polling, or about to poll again."""

from __future__ import annotations

import asyncio
import time

import pytest

from dpkube.k8s.client import Invalid
from dpkube.k8s.pods import QUERY_UID_LABEL, WARM_POOL_LABEL
from dpkube.models.queue import QueueSpec
from dpkube.operator import warm as warm_module
from dpkube.operator.channel import Channel
from dpkube.operator.podkeys import PodKeys
from dpkube.operator.settings import OperatorSettings
from dpkube.operator.warm import DEMAND_WINDOW, REPOLL_GRACE, WARMING_SECONDS, WarmPools, pods_to_start

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


class Pods:
    """The API server's view of a namespace's pods: a JSON patch applies only if its label test holds, as the API
    server applies it (a failed test is a 422); reads and creations are counted."""

    def __init__(self) -> None:
        self.labels: dict[str, dict[str, str]] = {}
        self.deleting: set[str] = set()
        self.reads = 0
        self.created: list[str] = []

    async def get(self, path: str) -> dict:
        self.reads += 1
        name = path.rsplit("/", 1)[1]
        return {"metadata": {"name": name, "labels": dict(self.labels[name])}, "status": {"phase": "Running"}}

    async def list(self, path: str, label_selector: str | None = None) -> dict:
        return {"items": [{"metadata": {"name": name, "labels": dict(labels)}, "status": {"phase": "Running"}}
                          for name, labels in self.labels.items() if QUERY_UID_LABEL not in labels]}

    async def patch(self, path: str, body: list, kind: str = "merge") -> dict:
        name = path.rsplit("/", 1)[1]
        _, test, replace, _ = body
        if self.labels[name] != test["value"] or name in self.deleting:
            raise Invalid(422, "Invalid", "the server rejected our request due to an error in our request")
        self.labels[name] = dict(replace["value"])
        return {}

    async def create(self, path: str, body: dict, answer: bool = True) -> None:
        self.created.append(body["metadata"]["name"])
        self.labels[body["metadata"]["name"]] = dict(body["metadata"]["labels"])


QUERY = {"metadata": {"namespace": "ns", "name": "hot", "uid": "u-1"}, "spec": {}}
OTHER = {"metadata": {"namespace": "ns", "name": "other", "uid": "u-2"}, "spec": {}}


async def started_and_polled(warm: WarmPools, spec: QueueSpec = SPEC) -> str:
    """A pod this process started for pool q, which then polled once."""
    await warm._create("q", "ns", spec)
    pod = next(name for (_, name) in warm._pool_of if name not in warm.ready("q", "ns")
               and ("ns", name) not in warm._claimed)
    await polled_once(warm, pod)
    return pod


def pools_on(pods: Pods) -> WarmPools:
    return WarmPools(client=pods, settings=OperatorSettings(), keys=PodKeys())  # type: ignore[arg-type]


async def test_a_pod_this_process_started_is_claimed_without_reading_it() -> None:
    pods = Pods()
    warm = pools_on(pods)
    pod = await started_and_polled(warm)
    assert await warm.claim(QUERY, "q", SPEC) == pod
    assert pods.labels[pod][QUERY_UID_LABEL] == "u-1" and pods.reads == 0


async def test_a_pod_another_query_took_is_not_claimed() -> None:
    pods = Pods()
    warm = pools_on(pods)
    pod = await started_and_polled(warm)
    pods.labels[pod][QUERY_UID_LABEL] = "u-0"
    assert await warm.claim(QUERY, "q", SPEC) is None
    assert pods.labels[pod][QUERY_UID_LABEL] == "u-0"


async def test_a_pod_being_deleted_is_not_claimed() -> None:
    pods = Pods()
    warm = pools_on(pods)
    pod = await started_and_polled(warm)
    pods.deleting.add(pod)
    assert await warm.claim(QUERY, "q", SPEC) is None
    assert QUERY_UID_LABEL not in pods.labels[pod]


async def test_a_pod_made_before_a_restart_is_read_then_claimed() -> None:
    pods = Pods()
    pods.labels["old"] = {WARM_POOL_LABEL: "q"}
    warm = pools_on(pods)
    await polled_once(warm, "old")
    assert await warm.claim(QUERY, "q", SPEC) == "old"
    assert pods.labels["old"][QUERY_UID_LABEL] == "u-1" and pods.reads == 1


async def test_a_pod_its_pool_listed_is_claimed_without_reading_it() -> None:
    pods = Pods()
    pods.labels["old"] = {WARM_POOL_LABEL: "q"}
    warm = pools_on(pods)
    await polled_once(warm, "old")
    await warm._keep_pool("q", "ns", QueueSpec(warm_pods=1))
    assert await warm.claim(QUERY, "q", QueueSpec(warm_pods=1)) == "old"
    assert pods.reads == 0


async def test_two_queries_claiming_at_once_take_two_pods() -> None:
    pods = Pods()
    warm = pools_on(pods)
    first, second = await started_and_polled(warm), await started_and_polled(warm)
    taken = await asyncio.gather(warm.claim(QUERY, "q", SPEC), warm.claim(OTHER, "q", SPEC))
    assert sorted(taken) == sorted([first, second])


async def test_a_claimed_pod_is_replaced_at_once_when_no_other_pod_is_idle() -> None:
    pods = Pods()
    warm = pools_on(pods)
    await started_and_polled(warm)
    await warm.claim(QUERY, "q", SPEC)
    assert warm._refills
    await asyncio.gather(*warm._refills)
    assert len(pods.created) == 2 and warm.warming("q", "ns") == 1


async def test_while_another_pod_is_idle_a_claimed_pod_is_replaced_once_its_query_has_run() -> None:
    pods = Pods()
    warm = pools_on(pods)
    await started_and_polled(warm)
    await started_and_polled(warm)
    await warm.claim(QUERY, "q", SPEC)
    await asyncio.sleep(0.05)
    assert len(pods.created) == 2  # the query runs: nothing starts beside it

    warm.ran("u-1")

    await asyncio.wait_for(asyncio.gather(*warm._refills), 1)
    assert len(pods.created) == 3


async def test_a_claimed_pod_whose_query_never_reports_is_replaced_after_the_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warm_module, "REFILL_AFTER_RUN_SECONDS", 0.01)
    pods = Pods()
    warm = pools_on(pods)
    await started_and_polled(warm)
    await started_and_polled(warm)
    await warm.claim(QUERY, "q", SPEC)
    await asyncio.wait_for(asyncio.gather(*warm._refills), 1)
    assert len(pods.created) == 3


async def test_a_claim_starts_no_pod_while_as_many_as_may_start_at_once_are_warming() -> None:
    pods = Pods()
    warm = pools_on(pods)
    await started_and_polled(warm)
    for _ in range(OperatorSettings().warm_starts_per_pool):
        await warm._create("q", "ns", SPEC)
    await warm.claim(QUERY, "q", SPEC)
    assert not warm._refills


async def test_a_pool_at_its_size_is_not_refilled() -> None:
    pods = Pods()
    warm = pools_on(pods)
    one = QueueSpec(warm_pods=1)
    await started_and_polled(warm, one)
    await started_and_polled(warm, one)
    await warm.claim(QUERY, "q", one)
    assert not warm._refills  # one pod still polls: the pool of one is full


async def test_a_pod_stops_warming_when_it_polls() -> None:
    warm = pools_on(Pods())
    await started_and_polled(warm)
    assert warm.warming("q", "ns") == 0


async def test_a_pod_that_never_polls_stops_counting_as_warming() -> None:
    warm = pools_on(Pods())
    await warm._create("q", "ns", SPEC)
    assert warm.warming("q", "ns") == 1
    assert warm.warming("q", "ns", now=time.monotonic() + WARMING_SECONDS) == 0


class Refusing(Pods):
    """An API server that refuses every new pod (a quota, say)."""

    async def create(self, path: str, body: dict, answer: bool = True) -> None:
        raise Invalid(422, "Invalid", "exceeded quota")


async def test_a_pod_the_api_server_refused_is_not_counted_as_warming() -> None:
    warm = pools_on(Refusing())
    with pytest.raises(Invalid):
        await warm._create("q", "ns", SPEC)
    assert warm.warming("q", "ns") == 0 and warm._pool_of == {}


async def test_stopping_answers_every_held_poll_at_once_and_holds_no_new_one() -> None:
    warm = pools()
    held = asyncio.create_task(warm.wait_for_query("ns", "p", 25))
    await asyncio.sleep(0)

    await asyncio.wait_for(warm.stop(), 1)

    await asyncio.wait_for(held, 1)  # answered now, not when its 25 s are up
    assert await asyncio.wait_for(warm.wait_for_query("ns", "p2", 25), 1) is False


class Ending:
    """The reconciler as the claim channel sees it: every output delivered ends its query."""

    async def deliver(self, namespace: str, uid: str, output: object) -> bool:
        return True


class Ask(dict):
    """A runner's request to the claim channel."""

    def __init__(self, body: dict) -> None:
        super().__init__()
        self.body = body

    async def json(self) -> dict:
        return self.body


async def test_a_result_handed_in_through_the_claim_channel_starts_the_claimed_pods_replacement() -> None:
    pods = Pods()
    warm = pools_on(pods)
    await started_and_polled(warm)
    await started_and_polled(warm)
    pod = await warm.claim(QUERY, "q", SPEC)
    assert pod is not None
    key = warm.keys.get("ns", pod)
    assert key is not None
    channel = Channel(pods, Ending(), warm, warm.keys, max_result_bytes=1_000)  # type: ignore[arg-type]
    output = {"ok": False, "error": {"kind": "internal", "message": "the run failed"}}

    answer = await channel.result(Ask({"namespace": "ns", "pod": pod, "token": key.token, "output": output}))

    assert answer.status == 200
    await asyncio.wait_for(asyncio.gather(*warm._refills), 0.2)  # well within the wait for a query that never reports
    assert len(pods.created) == 3
