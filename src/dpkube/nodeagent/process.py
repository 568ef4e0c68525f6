"""One container run as a local process: its own session (process group), output to a file, killed by PID.

The process group stands in for the container's cgroup: signals go to the whole group, and what is left
of the group is killed when the main process exits (a PID namespace dies with its init process).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import resource
import signal
import subprocess
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dpkube.nodeagent.errors import ContainerStartError

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcessIdentity:
    """A PID plus its start time (clock ticks since boot), so a reused PID is never mistaken for ours."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return cls(pid, int(stat.rpartition(")")[2].split()[19]))

    def save(self, path: Path) -> None:
        path.write_text(f"{self.pid} {self.start_ticks}\n")

    @classmethod
    def load(cls, path: Path) -> ProcessIdentity | None:
        try:
            pid, ticks = path.read_text().split()
        except (OSError, ValueError):
            return None
        return cls(int(pid), int(ticks))

    def is_alive(self) -> bool:
        return ProcessIdentity.of(self.pid) == self

    def kill_group(self) -> bool:
        """SIGKILL the group this process leads, if it is still the same process; True if signalled."""
        if not self.is_alive():
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
            return True
        return False


class GroupedProcess(abc.ABC):
    """A container's main process, leading its own process group; `wait` returns its exit code the way a
    container runtime reports it. How the exit code is learnt is the subclass's (`_exit_code`)."""

    def __init__(self, pid: int, identity: ProcessIdentity | None):
        self.pid = pid
        self.identity = identity
        self._code: int | None = None
        self._ending: asyncio.Future[int] | None = None

    @abc.abstractmethod
    async def _exit_code(self) -> int:
        """Wait for the process to end."""

    async def wait(self) -> int:
        """Exit code once the process ended (128 + signal number when a signal ended it); what is left of its
        group is killed then. Any number of callers may wait at once (the pod's worker, the agent stopping):
        the end is learnt once, and a caller cancelled leaves the others waiting."""
        if self._ending is None:
            self._ending = asyncio.ensure_future(self._ended())
        return await asyncio.shield(self._ending)

    async def _ended(self) -> int:
        code = await self._exit_code()
        self._code = code
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        return code

    @property
    def exited(self) -> bool:
        return self._code is not None

    def signal_group(self, sig: signal.Signals) -> None:
        if self.exited:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def resident_bytes(self) -> int | None:
        """Resident memory of the main process (not its children), or None once it is gone."""
        return self.resident_of(self.pid)

    @staticmethod
    def resident_of(pid: int) -> int | None:
        try:
            return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_SIZE
        except (OSError, IndexError, ValueError):
            return None


class ContainerProcess(GroupedProcess):
    """A container process this agent exec'd."""

    def __init__(self, process: asyncio.subprocess.Process, identity: ProcessIdentity | None):
        super().__init__(process.pid, identity)
        self._process = process

    @classmethod
    async def start(
        cls, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_path: Path,
        address_space_limit: int | None = None,
    ) -> ContainerProcess:
        """Start `argv` in a new session with stdout and stderr appended to `log_path`."""
        if not argv:
            raise ContainerStartError("no command: the node agent runs no image entrypoint, set command or args")
        if not cwd.is_dir():
            raise ContainerStartError(f'chdir to cwd ("{cwd}") set in config.json failed: no such file or directory')
        with log_path.open("ab") as log:
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=dict(env), cwd=cwd, start_new_session=True,
                )
            except FileNotFoundError as error:
                raise ContainerStartError(f'exec: "{argv[0]}": executable file not found in $PATH') from error
            except OSError as error:
                raise ContainerStartError(f'exec: "{argv[0]}": {error.strerror}') from error
        if address_space_limit:
            with contextlib.suppress(OSError):
                resource.prlimit(process.pid, resource.RLIMIT_AS, (address_space_limit, address_space_limit))
        return cls(process, ProcessIdentity.of(process.pid))

    async def _exit_code(self) -> int:
        code = await self._process.wait()
        return 128 - code if code < 0 else code


async def started_or_killed(start: Awaitable[GroupedProcess]) -> GroupedProcess:
    """A container's start, awaited so that a cancellation (the agent stopping) between the fork and the
    caller recording its PID kills the process instead of leaving it running unknown to anyone."""
    starting = asyncio.ensure_future(start)
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            process = await starting
            process.signal_group(signal.SIGKILL)
            await process.wait()
        raise
