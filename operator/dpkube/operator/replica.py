"""How one operator replica runs: alone (tests, `make dev`), or as a standby that leads while it holds the
Lease. kopf's peering would not pause our own scheduler task, so kopf runs only while the Lease is held.
Exit codes: 0 after a stop by signal (the lease released), 1 when leadership was lost (Kubernetes restarts
the replica as a standby).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import kopf

from dpkube.k8s.client import KubeClient, KubeConfig
from dpkube.operator.leader import LeaderElector
from dpkube.operator.liveness import serve_liveness
from dpkube.operator.settings import OperatorSettings

log = logging.getLogger("dpkube.operator")

LOST_LEADERSHIP = 1


async def run_operator(config: OperatorSettings, stop_flag: asyncio.Event | None = None,
                       ready_flag: asyncio.Future[None] | None = None) -> None:
    """kopf with our handlers over the configured namespaces, until a signal or `stop_flag`."""
    await kopf.operator(
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        standalone=True,
        memo=kopf.Memo(config=config),
        liveness_endpoint=config.liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


async def run_unelected(config: OperatorSettings) -> None:
    """The operator alone (tests, `make dev`), with `/livez` if asked for."""
    liveness = await serve_liveness(config.health_listen) if config.health_listen else None
    try:
        await run_operator(config)
    finally:
        if liveness is not None:
            await liveness.cleanup()


async def run_elected(config: OperatorSettings) -> int:
    """Stand by until this replica holds the lease, then run the operator while it does; return the exit code."""
    stop = asyncio.Event()
    trap_signals(stop)
    async with KubeClient(KubeConfig.load(), timeout=config.renew_deadline_seconds) as client:
        elector = LeaderElector(
            client, name=config.lease_name, namespace=config.lease_namespace or config.system_namespace,
            identity=config.identity, lease_duration=config.lease_duration_seconds,
            renew_deadline=config.renew_deadline_seconds, retry_period=config.retry_period_seconds,
        )
        liveness = await serve_liveness(config.health_listen, elector.alive) if config.health_listen else None
        try:
            if not await acquire_unless_stopped(elector, stop):
                return 0
            return await lead(config, elector, stop)
        finally:
            if liveness is not None:
                await liveness.cleanup()


async def lead(config: OperatorSettings, elector: LeaderElector, stop: asyncio.Event) -> int:
    """Run kopf while renewing the lease; release it after a stop by signal, or return 1 once it is lost."""
    renewing = asyncio.create_task(elector.hold(), name="lease renewal")  # before kopf: it cancels later tasks
    renewing.add_done_callback(lambda task: stop_leading(task, stop, config))
    started = asyncio.get_running_loop().create_future()
    started.add_done_callback(lambda _: trap_signals(stop))  # kopf trapped them for itself meanwhile
    try:
        await run_operator(config, stop, started)
    finally:
        lost = renewing.done() and not renewing.cancelled()
        renewing.cancel()
        if not lost:
            await elector.release()
    if lost:
        log.error("the operator stopped after losing its lease; exiting to restart as a standby")
        return LOST_LEADERSHIP
    return 0


def trap_signals(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT set `stop`. kopf then stops through its stop flag: stopped by its own signal handling
    instead, it would wait 5 s for its waiter on that flag before returning, delaying the lease's release."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)


async def acquire_unless_stopped(elector: LeaderElector, stop: asyncio.Event) -> bool:
    """Stand by until the lease is ours (True) or a signal came first (False, the lease left or given back)."""
    acquiring = asyncio.create_task(elector.acquire(), name="lease acquisition")
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for task in (acquiring, stopping):
        task.cancel()
    await asyncio.gather(acquiring, stopping, return_exceptions=True)
    if acquiring in done:
        acquiring.result()  # an unexpected error of the election loop ends the process
    if stop.is_set():
        await elector.release()
        return False
    return True


def stop_leading(renewing: asyncio.Task[None], stop: asyncio.Event, config: OperatorSettings) -> None:
    """Leadership is lost: stop kopf now, and exit outright should it not stop before others may take over."""
    if renewing.cancelled():
        return
    if renewing.exception() is not None:
        log.error("lease renewal failed", exc_info=renewing.exception())
    stop.set()
    margin = max(config.lease_duration_seconds - config.renew_deadline_seconds, 0.0)
    asyncio.get_running_loop().call_later(margin, exit_now)


def exit_now() -> None:
    """The lease may be someone else's by now: no handler of ours may run any longer."""
    log.error("the operator did not stop in time after losing its lease; exiting")
    logging.shutdown()
    os._exit(LOST_LEADERSHIP)
