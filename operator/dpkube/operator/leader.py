"""Lease-based leader election, as client-go's leaderelection does it: only the holder of a
coordination.k8s.io/v1 Lease runs the operator, so two replicas never reconcile or schedule at once.

A lease is expired when its record has not changed for `leaseDurationSeconds`, counted from when this
process first saw that record on its own monotonic clock: the holder's timestamps are never compared
with ours, so clock skew between machines cannot hand the lease to two holders. Every write is
conditioned on the resourceVersion just read, so of two candidates only one can win.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from dpkube.k8s.client import ApiError, Conflict, KubeClient, NotFound, Unreachable

log = logging.getLogger(__name__)

LEASE_API = "/apis/coordination.k8s.io/v1"
JITTER = 0.2
"""Standbys retry up to this fraction later than the retry period, so they do not all write at once."""
RELEASED_DURATION_SECONDS = 1
"""What a released lease says about its duration: a standby's next retry finds it free anyway."""

Clock = Callable[[], float]
WallClock = Callable[[], datetime]


class ElectionTimingError(ValueError):
    """The timings cannot keep one leader: a leader must give up before others may take over."""


TRANSIENT_ERRORS = (ApiError, Unreachable, OSError, TimeoutError)
"""What an election attempt survives (the API server is down, slow, or refuses): the next attempt retries."""


def micro_time(moment: datetime) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    """The election fields of a Lease's spec; its timestamps are the holder's and only informative."""

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> LeaseRecord:
        spec = spec or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


@dataclass(frozen=True)
class Observation:
    """A lease record and the local monotonic instant it was first seen; expiry counts from that instant."""

    record: LeaseRecord
    since: float


class Step(Enum):
    """What one election attempt does after reading the lease."""

    CREATE = "create"
    """There is no lease yet: create it naming us."""
    ACQUIRE = "acquire"
    """The lease is free (released) or expired: replace it naming us."""
    RENEW = "renew"
    """We hold the lease: replace it with a new renewTime."""
    WAIT = "wait"
    """Someone else holds a lease that has not expired."""


def observe(previous: Observation | None, record: LeaseRecord, now: float) -> Observation:
    """Keep the first-seen instant while the record is unchanged: only a change proves its holder alive."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


def expired(observation: Observation, now: float) -> bool:
    """The record has not changed for its own lease duration, by our clock."""
    return now >= observation.since + observation.record.duration_seconds


def decide(observation: Observation | None, now: float, identity: str) -> Step:
    """What to do with the lease as observed (None: there is none); pure, so it is tested without a server."""
    if observation is None:
        return Step.CREATE
    holder = observation.record.holder
    if holder == identity:
        return Step.RENEW
    if not holder or expired(observation, now):
        return Step.ACQUIRE
    return Step.WAIT


def claim(record: LeaseRecord | None, identity: str, duration_seconds: int, wall: datetime) -> LeaseRecord:
    """The record naming `identity` holder: a renewal keeps acquireTime; a change of hands counts a transition."""
    stamp = micro_time(wall)
    if record is None:
        return LeaseRecord(identity, duration_seconds, stamp, stamp, 0)
    if record.holder == identity:
        return replace(record, duration_seconds=duration_seconds, renew_time=stamp)
    return LeaseRecord(identity, duration_seconds, stamp, stamp, record.transitions + 1)


def released(record: LeaseRecord, wall: datetime) -> LeaseRecord:
    """The record a leader leaves on a graceful stop: no holder, so a standby need not wait for expiry."""
    stamp = micro_time(wall)
    return replace(record, holder="", duration_seconds=RELEASED_DURATION_SECONDS, acquire_time=stamp,
                   renew_time=stamp)


def with_record(lease: Mapping[str, Any], record: LeaseRecord) -> dict[str, Any]:
    """`lease` (metadata and resourceVersion kept, so the write is conditioned on it) with `record` in its spec."""
    return {**lease, "spec": {**(lease.get("spec") or {}), **record.to_spec()}}


def check_timings(lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """client-go's rules: a leader gives up (renew deadline) before others may take over (lease duration)."""
    if not lease_duration > renew_deadline:
        raise ElectionTimingError(f"the lease duration ({lease_duration}s) must exceed the renew deadline "
                                  f"({renew_deadline}s)")
    if not renew_deadline > retry_period * (1 + JITTER):
        raise ElectionTimingError(f"the renew deadline ({renew_deadline}s) must exceed the retry period "
                                  f"({retry_period}s) with its jitter")
    if retry_period <= 0:
        raise ElectionTimingError("the retry period must be positive")


class LeaderElector:
    """One candidate for one Lease: `acquire` stands by until it leads, `hold` renews until it no longer does."""

    def __init__(self, client: KubeClient, *, name: str, namespace: str, identity: str,
                 lease_duration: int = 15, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Clock = time.monotonic, wall: WallClock = lambda: datetime.now(UTC)):
        check_timings(lease_duration, renew_deadline, retry_period)
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock
        self._wall = wall
        self.observed: Observation | None = None
        """The lease as last read or written, and since when by our clock."""
        self.leading = False
        self.renewed_at = 0.0
        """When the last successful write began, by our clock: leadership ends a renew deadline after it."""
        self._lease: dict[str, Any] | None = None
        self._beat_at = clock()

    @property
    def path(self) -> str:
        return f"{LEASE_API}/namespaces/{self.namespace}/leases/{self.name}"

    @property
    def holder(self) -> str | None:
        """Who held the lease when it was last read or written ("" once released, None before any read)."""
        return None if self.observed is None else self.observed.record.holder

    def alive(self) -> bool:
        """The election loop completed an attempt recently (attempts are bounded, so a gap means it is stuck)."""
        return self._clock() - self._beat_at < self.lease_duration + self.retry_period

    async def try_acquire_or_renew(self) -> bool:
        """One attempt: read the lease, decide, and write conditioned on what was read. True if we now hold it."""
        now = self._clock()
        try:
            lease: dict[str, Any] | None = await self.client.get(self.path)
        except NotFound:
            lease = None
        self.observed = None if lease is None else observe(self.observed, LeaseRecord.from_spec(lease.get("spec")),
                                                           now)
        if decide(self.observed, now, self.identity) is Step.WAIT:
            self.leading = False
            return False
        record = claim(self.observed.record if self.observed else None, self.identity, self.lease_duration,
                       self._wall())
        try:
            if lease is None:
                written = await self.client.create(self.path.rsplit("/", 1)[0], {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": record.to_spec()})
            else:
                written = await self.client.replace(self.path, with_record(lease, record))
        except Conflict:
            return False  # someone wrote first; the next attempt reads again
        self._lease = written
        self.observed = Observation(LeaseRecord.from_spec(written.get("spec")), now)
        self.renewed_at = now
        self.leading = True
        return True

    async def acquire(self) -> None:
        """Return once this process holds the lease; log each holder seen while standing by."""
        announced: str | None = None
        while True:
            try:
                async with asyncio.timeout(self.renew_deadline):
                    if await self.try_acquire_or_renew():
                        log.info("acquired lease %s/%s as %s: this replica leads", self.namespace, self.name,
                                 self.identity)
                        self._beat_at = self._clock()
                        return
            except TRANSIENT_ERRORS as error:
                log.warning("could not read or write lease %s/%s: %s", self.namespace, self.name, error)
            self._beat_at = self._clock()
            if self.holder and self.holder != announced:
                announced = self.holder
                log.info("lease %s/%s is held by %s; %s stands by", self.namespace, self.name, announced,
                         self.identity)
            await asyncio.sleep(self.retry_period * (1 + random.random() * JITTER))

    async def hold(self) -> None:
        """Renew every retry period; return once leadership is lost: another holder is recorded, or no renewal
        succeeded within the renew deadline (others may take over when the lease duration has passed)."""
        while True:
            await asyncio.sleep(self.retry_period)
            remaining = self.renewed_at + self.renew_deadline - self._clock()
            renewed = False
            if remaining > 0:
                try:
                    async with asyncio.timeout(remaining):
                        renewed = await self.try_acquire_or_renew()
                except TRANSIENT_ERRORS as error:
                    log.warning("could not renew lease %s/%s: %s", self.namespace, self.name, error)
            self._beat_at = self._clock()
            if renewed:
                continue
            if self.holder and self.holder != self.identity:
                log.error("lease %s/%s is now held by %s: %s no longer leads", self.namespace, self.name,
                          self.holder, self.identity)
                break
            if self._clock() >= self.renewed_at + self.renew_deadline:
                log.error("could not renew lease %s/%s within %ss: %s no longer leads", self.namespace,
                          self.name, self.renew_deadline, self.identity)
                break
        self.leading = False

    async def release(self) -> bool:
        """Hand the lease back, conditioned on our last write, so a standby takes over at its next retry. A
        renewal cut short by the stop may have landed unseen: the lease is read again, and released if ours."""
        if not self.leading or self._lease is None or self.observed is None:
            return False
        self.leading = False
        lease = self._lease
        try:
            async with asyncio.timeout(self.renew_deadline):
                while True:
                    record = LeaseRecord.from_spec(lease.get("spec"))
                    if record.holder != self.identity:
                        return False  # someone else's by now: not ours to release
                    try:
                        self._lease = await self.client.replace(self.path,
                                                                with_record(lease, released(record, self._wall())))
                        break
                    except Conflict:
                        lease = await self.client.get(self.path)
        except NotFound:
            return False
        except TRANSIENT_ERRORS as error:
            log.warning("could not release lease %s/%s (it will expire): %s", self.namespace, self.name, error)
            return False
        self.observed = Observation(LeaseRecord.from_spec(self._lease.get("spec")), self._clock())
        log.info("released lease %s/%s", self.namespace, self.name)
        return True
