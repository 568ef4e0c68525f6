"""A warm pool follows demand: its floor when idle, plus what was claimed lately, never past its ceiling."""

from __future__ import annotations

from dpkube.models.queue import QueueSpec
from dpkube.operator.podkeys import PodKeys
from dpkube.operator.settings import OperatorSettings
from dpkube.operator.warm import DEMAND_WINDOW, WarmPools

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
