"""One worker of `dpkube.engine.pool`: runs the jobs its parent sends, one at a time, until its input closes.

A job is loaded first (unpickling it imports its function's module), then announced as started: only what
follows counts against the job's time limit.

Messages are length-prefixed pickles on stdin and stdout, which are moved to private descriptors first so
that anything a library prints goes to stderr, never into a reply. The worker exits when its parent is gone.
"""

from __future__ import annotations

import importlib
import os
import pickle
import sys
import threading
import time
from typing import Any, BinaryIO

from dpkube.engine.errors import EngineError
from dpkube.engine.pool import FRAME

PARENT_CHECK_SECONDS = 1.0
NICENESS = 10
"""Workers yield the CPU to their parent: its event loop (and /healthz) stays responsive while a
pathological job runs out its time limit."""


def _read(channel: BinaryIO, size: int) -> bytes | None:
    data = channel.read(size)
    if len(data) < size:
        return None
    return data


def _receive(channel: BinaryIO) -> bytes | None:
    """The next message's pickle, or None once the parent closed the pipe."""
    header = _read(channel, FRAME.size)
    return None if header is None else _read(channel, FRAME.unpack(header)[0])


def _send(channel: BinaryIO, reply: tuple[Any, ...]) -> None:
    try:
        payload = pickle.dumps(reply)
    except Exception as exc:  # an unpicklable result or error attribute: report its kind only
        payload = pickle.dumps(("failed", f"unpicklable reply: {type(exc).__name__}"))
    channel.write(FRAME.pack(len(payload)) + payload)
    channel.flush()


def error_reply(exc: BaseException) -> tuple[Any, ...]:
    """An engine error with its class lineage, args and attributes; anything else by its class name only."""
    if isinstance(exc, EngineError):
        lineage = [(cls.__module__, cls.__qualname__) for cls in type(exc).__mro__
                   if isinstance(cls, type) and issubclass(cls, EngineError)]
        return ("error", lineage, exc.args, dict(vars(exc)))
    return ("failed", type(exc).__name__)


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone (killed before it could kill us), even in the middle of a job."""
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def serve() -> None:
    replies = os.fdopen(os.dup(1), "wb")
    jobs = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.stdout = sys.stderr
    os.nice(NICENESS)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    message = _receive(jobs)
    if message is None:
        return
    setup = pickle.loads(message)
    sys.path[:] = setup["sys_path"]
    try:
        for module in setup["preload"]:
            importlib.import_module(module)
    except BaseException as exc:
        _send(replies, ("failed", f"preload failed: {type(exc).__name__}"))
        return
    _send(replies, ("ok", None))
    while (job := _receive(jobs)) is not None:
        try:
            fn, args = pickle.loads(job)
        except BaseException as exc:
            _send(replies, error_reply(exc))
            continue
        _send(replies, ("started",))
        try:
            reply: tuple[Any, ...] = ("ok", fn(*args))
        except BaseException as exc:
            reply = error_reply(exc)
        _send(replies, reply)

if __name__ == "__main__":
    serve()
