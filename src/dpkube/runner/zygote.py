"""The zygote: a process that has imported the runner and the core DP libraries, and forks a runner per pod.

`python -m dpkube.runner.zygote SOCKET`. It never sees a query: a pod's process is forked with
only its command line, environment, folder and log file, and gets its input over the claim channel like
any runner. Each child starts a session of its own, gets fresh random seeds, and runs `dpkube.runner`'s
`main`; the zygote reports its exit code and is never touched by it (fork copies, it does not share).

Protocol, one Unix-socket connection per child, JSON lines: the agent sends a `SpawnRequest`; the zygote
answers `{"pid": N}` (or `{"error": "..."}`) and, once the child has ended, `{"exit": code}`.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import json
import os
import random
import resource
import selectors
import signal
import socket
import sys
import tempfile
import traceback
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dpkube.models.zygote import RUNNER_MODULE, SPAWN_REQUEST_LIMIT, SpawnRequest
from dpkube.runner import pages

if TYPE_CHECKING:
    import numpy as np  # imported once the zygote is single-threaded (`main`), never before

PR_SET_PDEATHSIG = 1

# The zygote forks: a BLAS thread pool made before the fork would be lost in every child, so it makes none.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def preload() -> None:
    """Import what every runner needs, and run once what every runner's start runs (its command line, its
    settings from the environment: pydantic-settings builds its sources on first use); this is what each child
    no longer pays for, about 3 ms of CPU a runner for the start alone."""
    from dpkube.models.payloads import CORE_LIBRARIES
    from dpkube.models.runner import RunnerSettings
    from dpkube.runner.__main__ import parse_args, warm_up

    warm_up(",".join(library.value for library in CORE_LIBRARIES), rehearsing=True)
    parse_args(["--warm", "--claim"])
    RunnerSettings()  # the zygote's own environment: nothing of it is kept
    gc.freeze()  # what the imports made is never scanned again, so a child's collections copy none of it


def learn_written_pages() -> dict[str, np.ndarray]:
    """The pages a run of each core library writes, by library: what a warm runner copies while it waits."""
    from dpkube.engine.rehearsal import rehearse
    from dpkube.models.payloads import CORE_LIBRARIES

    return {library.value: pages.learn(functools.partial(rehearse, library, again=True))
            for library in CORE_LIBRARIES}


def copy_written_pages(written: dict[str, np.ndarray]) -> None:
    """In a warm runner, before it polls: copy the pages a run of its libraries writes (`pages`)."""
    from dpkube.models.runner import RunnerSettings

    libraries = [name.strip() for name in RunnerSettings().libraries.split(",")]
    pages.populate(pages.runs([written[name] for name in libraries if name in written]))


def exit_code(status: int) -> int:
    """A wait status as a container runtime reports it (128 + signal number when a signal ended it)."""
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


class Zygote:
    """Accepts spawn requests, forks, and reports each child's end on its own connection."""

    def __init__(self, listener: socket.socket, written: dict[str, np.ndarray] | None = None):
        self.listener = listener
        self.written = written or {}
        """The pages a run of each library writes (`learn_written_pages`)."""
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, socket.socket] = {}
        self.wakeup_read, self.wakeup_write = socket.socketpair()

    def serve(self) -> None:
        self.wakeup_read.setblocking(False)
        self.wakeup_write.setblocking(False)
        signal.set_wakeup_fd(self.wakeup_write.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wakeup_read, selectors.EVENT_READ)
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    with contextlib.suppress(BlockingIOError):
                        self.wakeup_read.recv(4096)
            self._reap()

    def _accept(self) -> None:
        connection, _ = self.listener.accept()
        try:
            connection.settimeout(5.0)
            request = SpawnRequest.model_validate_json(_read_line(connection))
        except (OSError, ValueError, ValidationError) as error:
            _send(connection, {"error": f"bad spawn request: {error}"})
            connection.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        zygote = os.getpid()
        pid = os.fork()
        if pid == 0:
            _die_with_parent(signal.SIGKILL, parent=zygote)
            self._become_child(connection, request)
        self.children[pid] = connection
        _send(connection, {"pid": pid})

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.children.pop(pid, None)
            if connection is not None:
                _send(connection, {"exit": exit_code(status)})
                connection.close()

    def _become_child(self, connection: socket.socket, request: SpawnRequest) -> None:
        """Run the pod's runner in this forked process; never returns."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for inherited in (self.listener, self.wakeup_read, self.wakeup_write, connection,
                              *self.children.values()):
                inherited.close()
            self.selector.close()
            os.setsid()
            _redirect(request)
            sys.argv = [f"python -m {RUNNER_MODULE}", *request.args]
            reseed()
            from dpkube.runner.__main__ import main, parse_args

            if parse_args(request.args).warm:  # it waits for its query: time to copy what its run will write
                copy_written_pages(self.written)

            code = main(request.args)
        except SystemExit as leaving:
            code = leaving.code if isinstance(leaving.code, int) else (0 if leaving.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)


def reseed() -> None:
    """A child must not draw the zygote's random numbers again: every generator a library may default to
    gets fresh OS entropy (noise drawn twice from one seed would cancel out between two queries)."""
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def _redirect(request: SpawnRequest) -> None:
    """The container's view: stdin empty, stdout and stderr to its log, its folder, its environment, its
    memory limit (RLIMIT_AS, as the agent sets on an exec'd process)."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    log = os.open(request.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    os.chdir(request.cwd)
    os.environ.clear()
    os.environ.update(request.env)
    tempfile.tempdir = None  # computed again from this environment's TMPDIR
    if request.address_space:
        resource.setrlimit(resource.RLIMIT_AS, (request.address_space, request.address_space))


def _read_line(connection: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            raise ValueError("connection closed before the request ended")
        data += chunk
        if len(data) > SPAWN_REQUEST_LIMIT:
            raise ValueError(f"request larger than {SPAWN_REQUEST_LIMIT} bytes")
    return data


def _send(connection: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        connection.sendall(json.dumps(message).encode() + b"\n")


def _die_with_parent(sig: signal.Signals = signal.SIGTERM, parent: int | None = None) -> None:
    """The agent that started the zygote may die without stopping it: the zygote then goes too. So does each
    child the zygote forks (`parent`: the zygote), whatever the agent knew of it: a child forked as the agent
    stopped, or killed while it was not yet in a process group of its own, would otherwise run on unowned. A
    parent already gone when this runs takes the child at once."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def main(argv: list[str] | None = None) -> None:
    path = (argv if argv is not None else sys.argv[1:])[0]
    _die_with_parent()
    for name, value in SINGLE_THREADED.items():
        os.environ.setdefault(name, value)
    preload()
    written = learn_written_pages()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    old_mask = os.umask(0o077)
    try:
        listener.bind(path)
    finally:
        os.umask(old_mask)
    listener.listen(64)
    print("ready", flush=True)
    Zygote(listener, written).serve()


if __name__ == "__main__":
    main()
