"""A bounded pool of worker processes for CPU work on untrusted input: pricing, validation, parsing.

A job runs in a process of its own with a time limit: over it, the process is killed (SIGKILL) and
replaced, so a pathological payload costs one worker for `timeout` seconds and never stalls the
caller's event loop. Workers are started by exec (`python -m dpkube.engine.pool_worker`), never by
forking the caller, which has threads and an event loop; each imports the `preload` modules once
(the DP libraries), so the caller never needs to.

Errors come back typed: an `EngineError` raised in a worker is rebuilt as the same class (or its
nearest base the caller has imported), any other exception as `WorkerFailed` with its class name
only. A job over its limit raises `JobTimedOut`, a `PayloadRejected` (a 400 naming the limit): the
request is refused as too costly, like a payload over a size limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import pickle
import struct
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from dpkube.engine.errors import EngineError, PayloadRejected

log = logging.getLogger(__name__)

FRAME = struct.Struct("!Q")
"""Every message on a worker's pipes: its length, then a pickle."""
WORKER_MODULE = "dpkube.engine.pool_worker"
START_SECONDS = 120.0
"""How long a worker may take to import its preload modules, or a job's module (torch takes a while on a
busy node); imports never count against a job's time limit."""
RESTART_DELAY_SECONDS = 1.0
"""Pause before replacing a worker that failed to start, so a broken install does not spin."""


class JobTimedOut(PayloadRejected):
    """The job ran past its time limit; its worker was killed. A refusal of the request (HTTP 400)."""

    def __init__(self, limit: float) -> None:
        super().__init__(f"the request took more than {limit:g} s to check, the limit; simplify it")
        self.limit = limit


class JobCrashed(PayloadRejected):
    """The job ended its worker process (a crash, or the memory limit): the request is refused."""

    def __init__(self, returncode: int | None) -> None:
        super().__init__(f"checking the request stopped its worker process (exit status {returncode})")
        self.returncode = returncode


class PoolBusy(EngineError):
    """Every worker is busy and the queue is full (or the pool is closing): try again shortly."""


class WorkerFailed(EngineError):
    """A job raised something that is not an engine error (a platform fault): only its class name is kept."""


@dataclass(eq=False)
class _Worker:
    process: asyncio.subprocess.Process
    ready: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def pid(self) -> int:
        return self.process.pid


def _frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload)) + payload


async def _read_message(reader: asyncio.StreamReader) -> Any:
    (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
    return pickle.loads(await reader.readexactly(size))


def rebuild_error(reply: tuple[Any, ...]) -> EngineError:
    """The exception of an error reply: the engine error's own class when this process has imported its
    module (else its nearest imported base), with its args and attributes; a `WorkerFailed` otherwise."""
    if reply[0] == "error":
        _, lineage, args, state = reply
        for module, qualname in lineage:
            if module not in sys.modules:
                continue
            cls: Any = importlib.import_module(module)
            for part in qualname.split("."):
                cls = getattr(cls, part, None)
            if isinstance(cls, type) and issubclass(cls, EngineError):
                error = cls.__new__(cls)
                error.args = tuple(args)
                error.__dict__.update(state)
                return error
    return WorkerFailed(str(reply[-1]))


class WorkerPool:
    """At most `workers` jobs at a time, at most `max_queued` waiting; each job within its time limit."""

    def __init__(self, workers: int = 1, timeout: float = 5.0, max_queued: int = 64,
                 preload: Sequence[str] = ()) -> None:
        if workers < 1 or timeout <= 0 or max_queued < 0:
            raise ValueError("a pool needs at least one worker, a positive timeout and a non-negative queue")
        self.workers = workers
        self.timeout = timeout
        self.max_queued = max_queued
        self.preload = tuple(preload)
        self._idle: asyncio.Queue[_Worker | None] = asyncio.Queue()
        """Workers free for a job; None wakes a waiter when the pool closes."""
        self._live: set[_Worker] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting = 0
        self._started = False
        self._warm = asyncio.Event()
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers (replaced ones drop out)."""
        return sorted(worker.pid for worker in self._live)

    @property
    def waiting(self) -> int:
        """Jobs waiting for a worker."""
        return self._waiting

    @property
    def warm(self) -> bool:
        """Every worker of the first start has imported its preload modules (or failed to); stays true while
        workers are replaced, so a timed-out job never makes its caller look unready."""
        return self._warm.is_set()

    async def wait_warm(self) -> None:
        await self._warm.wait()

    async def start(self) -> None:
        """Spawn the workers in the background, one after another: each imports its preload modules before the
        next starts, so a starting pool takes one CPU, not one per worker. Jobs wait for a started worker."""
        if self._started:
            return
        self._started = True
        self._background(self._spawn_in_turn())

    async def _spawn_in_turn(self) -> None:
        for _ in range(self.workers):
            worker = await self._spawn()
            self._idle.put_nowait(worker)
            with contextlib.suppress(EngineError):
                await asyncio.shield(worker.ready)
        self._warm.set()

    async def run(self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None) -> Any:
        """`fn(*args)` in a worker (`fn` is a module-level function, `args` picklable); its result or its error."""
        if self._closed or not self._started:
            raise PoolBusy("the worker pool is not running")
        if self._idle.empty() and self._waiting >= self.max_queued:
            raise PoolBusy(f"all {self.workers} workers are busy and {self._waiting} requests wait")
        job = pickle.dumps((fn, args))
        worker = await self._acquire()
        try:
            reply = await self._exchange(worker, job, self.timeout if timeout is None else timeout)
        except JobCrashed:
            self._replace(worker)
            if self._closed:
                raise PoolBusy("the worker pool is closing") from None
            raise
        except BaseException:
            self._replace(worker)
            raise
        self._idle.put_nowait(worker)
        if reply[0] == "ok":
            return reply[1]
        raise rebuild_error(reply)

    async def close(self) -> None:
        """Stop every worker and wait for them to exit; jobs still waiting get `PoolBusy`."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for worker in list(self._live):
            await self._stop(worker)
        for _ in range(self._waiting):
            self._idle.put_nowait(None)

    async def _acquire(self) -> _Worker:
        """A started, live worker; waits in the queue for one."""
        while True:
            self._waiting += 1
            try:
                worker = await self._idle.get()
            finally:
                self._waiting -= 1
            if worker is None or self._closed:
                raise PoolBusy("the worker pool is closing")
            try:
                await asyncio.shield(worker.ready)
            except asyncio.CancelledError:
                self._idle.put_nowait(worker)
                raise
            except EngineError:
                self._replace(worker, delay=RESTART_DELAY_SECONDS)
                raise
            if worker.process.returncode is None:
                return worker
            self._replace(worker)

    async def _exchange(self, worker: _Worker, job: bytes, limit: float) -> tuple[Any, ...]:
        """Send the job; once the worker has loaded it (imports and all), give it `limit` seconds to answer."""
        process = worker.process
        assert process.stdin is not None and process.stdout is not None
        try:
            try:
                async with asyncio.timeout(START_SECONDS):
                    process.stdin.write(_frame(job))
                    await process.stdin.drain()
                    loaded: tuple[Any, ...] = await _read_message(process.stdout)
            except TimeoutError:
                raise WorkerFailed("the job could not be loaded in time") from None
            if loaded[0] != "started":
                return loaded
            try:
                async with asyncio.timeout(limit):
                    reply: tuple[Any, ...] = await _read_message(process.stdout)
            except TimeoutError:
                raise JobTimedOut(limit) from None
        except (asyncio.IncompleteReadError, ConnectionError):
            raise JobCrashed(await process.wait()) from None
        return reply

    async def _spawn(self) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", WORKER_MODULE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        worker = _Worker(process)
        self._live.add(worker)
        self._background(self._handshake(worker))
        return worker

    async def _handshake(self, worker: _Worker) -> None:
        """Send the worker its import path and preload list; it answers once it has imported them."""
        process = worker.process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(_frame(pickle.dumps({"sys_path": list(sys.path), "preload": self.preload})))
            async with asyncio.timeout(START_SECONDS):
                await process.stdin.drain()
                reply = await _read_message(process.stdout)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            _fail(worker, WorkerFailed(f"worker did not start: {type(exc).__name__}"))
            return
        if reply[0] != "ok":
            _fail(worker, rebuild_error(reply))
            return
        worker.ready.set_result(None)

    def _replace(self, worker: _Worker, delay: float = 0.0) -> None:
        """Kill `worker` and put a fresh one in its place (in the background: the caller answers at once)."""

        async def replace() -> None:
            await self._stop(worker)
            if delay:
                await asyncio.sleep(delay)
            if not self._closed:
                self._idle.put_nowait(await self._spawn())

        self._background(replace())

    async def _stop(self, worker: _Worker) -> None:
        self._live.discard(worker)
        process = worker.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()
        if process.stdin is not None:
            process.stdin.close()
        if not worker.ready.done():
            worker.ready.set_exception(PoolBusy("the worker pool is closing"))
            worker.ready.exception()

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _fail(worker: _Worker, error: EngineError) -> None:
    """A worker that could not start: the job that waits on it gets `error`, logged here in case none does."""
    log.error("pool worker failed to start", extra={"pid": worker.pid, "error": error.message})
    worker.ready.set_exception(error)
    worker.ready.exception()
