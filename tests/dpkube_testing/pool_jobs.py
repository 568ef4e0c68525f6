"""Jobs for the worker pool's tests: module-level functions a worker process can import by name."""

from __future__ import annotations

import os
import signal
import time

from dpkube.engine.errors import ExternalLibraryError, InvalidQuery
from dpkube.models.payloads import Library


def add(a: int, b: int) -> int:
    return a + b


def pid() -> int:
    return os.getpid()


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def spin_forever() -> None:
    while True:
        pass


def refuse(message: str) -> None:
    raise InvalidQuery(message)


def fail_in_library(message: str) -> None:
    raise ExternalLibraryError(Library.OPENDP, message)


def fail_unexpectedly() -> None:
    raise KeyError("a secret value")


def crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def printing() -> str:
    print("noise on stdout")
    return "result"


def timed_sleep(seconds: float) -> tuple[int, float, float]:
    """(pid, start, end) on the system-wide monotonic clock, to reconstruct how many jobs overlapped."""
    start = time.monotonic()
    time.sleep(seconds)
    return os.getpid(), start, time.monotonic()


def imported(module: str) -> bool:
    import sys

    return module in sys.modules
