"""Leader election decides from the lease record and our own clock only, as client-go does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dpkube.operator.leader import (
    ElectionTimingError,
    LeaseRecord,
    Observation,
    Step,
    check_timings,
    claim,
    decide,
    observe,
    released,
)

ME, OTHER = "operator-a_1f2e3d", "operator-b_4c5b6a"
WALL = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
HELD = LeaseRecord(OTHER, 15, "2026-03-01T11:00:00.000000Z", "2026-03-01T11:59:59.000000Z", 3)


def test_a_missing_lease_is_created() -> None:
    assert decide(None, now=100.0, identity=ME) is Step.CREATE


def test_a_released_lease_is_acquired_without_waiting() -> None:
    free = released(HELD, WALL)
    assert decide(Observation(free, since=100.0), now=100.0, identity=ME) is Step.ACQUIRE


def test_a_lease_another_holder_recently_changed_is_waited_for() -> None:
    assert decide(Observation(HELD, since=100.0), now=114.9, identity=ME) is Step.WAIT


def test_a_lease_unchanged_for_its_duration_by_our_clock_is_taken_over() -> None:
    assert decide(Observation(HELD, since=100.0), now=115.0, identity=ME) is Step.ACQUIRE


def test_our_own_lease_is_renewed() -> None:
    mine = LeaseRecord(ME, 15, "t0", "t1", 0)
    assert decide(Observation(mine, since=100.0), now=100.5, identity=ME) is Step.RENEW


def test_the_holders_old_renew_time_does_not_expire_a_lease_we_just_saw() -> None:
    stale_by_its_own_clock = LeaseRecord(OTHER, 15, "2020-01-01T00:00:00.000000Z", "2020-01-01T00:00:00.000000Z", 1)
    first_seen = observe(None, stale_by_its_own_clock, now=500.0)
    assert decide(first_seen, now=501.0, identity=ME) is Step.WAIT


def test_expiry_counts_the_holders_lease_duration_not_ours() -> None:
    long_lease = LeaseRecord(OTHER, 60, "t0", "t1", 0)
    assert decide(Observation(long_lease, since=100.0), now=130.0, identity=ME) is Step.WAIT


def test_an_unchanged_record_keeps_its_first_observation_time() -> None:
    first = observe(None, HELD, now=100.0)
    assert observe(first, LeaseRecord(**vars(HELD)), now=110.0).since == 100.0


def test_a_renewal_seen_restarts_the_observation_clock() -> None:
    first = observe(None, HELD, now=100.0)
    renewed = LeaseRecord(OTHER, 15, HELD.acquire_time, "2026-03-01T12:00:01.000000Z", 3)
    later = observe(first, renewed, now=110.0)
    assert later.since == 110.0
    assert decide(later, now=120.0, identity=ME) is Step.WAIT


def test_a_new_lease_names_us_with_no_transition() -> None:
    record = claim(None, ME, 15, WALL)
    assert record == LeaseRecord(ME, 15, "2026-03-01T12:00:00.123456Z", "2026-03-01T12:00:00.123456Z", 0)


def test_taking_over_counts_a_transition_and_restarts_the_acquire_time() -> None:
    record = claim(HELD, ME, 15, WALL)
    assert (record.holder, record.transitions, record.acquire_time) == (ME, 4, "2026-03-01T12:00:00.123456Z")


def test_acquiring_a_released_lease_counts_a_transition() -> None:
    assert claim(released(HELD, WALL), ME, 15, WALL).transitions == HELD.transitions + 1


def test_a_renewal_keeps_the_acquire_time_and_transitions() -> None:
    mine = LeaseRecord(ME, 15, "2026-03-01T11:00:00.000000Z", "2026-03-01T11:59:58.000000Z", 2)
    record = claim(mine, ME, 15, WALL)
    assert record == LeaseRecord(ME, 15, mine.acquire_time, "2026-03-01T12:00:00.123456Z", 2)


def test_a_released_lease_names_no_holder_and_lasts_one_second() -> None:
    record = released(LeaseRecord(ME, 15, "t0", "t1", 2), WALL)
    assert (record.holder, record.duration_seconds, record.transitions) == ("", 1, 2)


def test_a_record_reads_back_from_the_spec_it_writes() -> None:
    assert LeaseRecord.from_spec(HELD.to_spec()) == HELD


def test_a_lease_without_a_spec_reads_as_free() -> None:
    assert LeaseRecord.from_spec(None).holder == ""


@pytest.mark.parametrize("lease, renew, retry", [(10, 10, 2), (15, 20, 2), (15, 10, 10), (15, 10, 0)])
def test_timings_where_a_leader_could_outlast_its_lease_are_refused(lease: float, renew: float,
                                                                    retry: float) -> None:
    with pytest.raises(ElectionTimingError):
        check_timings(lease, renew, retry)


def test_client_go_default_timings_are_accepted() -> None:
    check_timings(15, 10, 2)
