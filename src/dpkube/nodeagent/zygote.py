"""The agent's side of the zygote: runner containers are forked from a process that imported the DP
libraries once, instead of importing them again in every pod (seconds of CPU each on a small node).

Only a container whose command is `python -m dpkube.runner ...` with the agent's own interpreter and
Python environment is forked; anything else, or any failure of the zygote, falls back to exec. A forked
process is still one process per container, in a session of its own, with its own environment, folder
and log, killed by PID like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from dpkube.models.zygote import RUNNER_MODULE, SpawnRequest
from dpkube.nodeagent.errors import ContainerStartError
from dpkube.nodeagent.process import GroupedProcess, ProcessIdentity

log = logging.getLogger(__name__)
START_SECONDS = 120.0
"""How long the zygote may take to import the libraries before the agent gives up on it."""
LOST_CODE = 137
"""Exit code of a forked process whose end the zygote could not report (the zygote died first)."""
INTERPRETER_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE")
"""Environment that changes what an interpreter imports: a container forked from the zygote must agree."""


class ForkedProcess(GroupedProcess):
    """A container process forked by the zygote: its exit code arrives on the spawn connection."""

    def __init__(self, pid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        super().__init__(pid, ProcessIdentity.of(pid))
        self._reader = reader
        self._writer = writer

    async def _exit_code(self) -> int:
        try:
            line = await self._reader.readline()
            code = json.loads(line)["exit"] if line else None
        except (OSError, ValueError, KeyError):
            code = None
        finally:
            self._writer.close()
        if code is None:  # the zygote is gone: its child was reparented, poll until it ends too
            while self.identity is not None and self.identity.is_alive():
                await asyncio.sleep(0.2)
            return LOST_CODE
        return int(code)


class Zygote:
    """One zygote process per agent, started once and stopped by its PID with the agent."""

    def __init__(self, folder: Path, python: str = sys.executable):
        self.folder = folder
        self.python = python
        self.socket = folder / "zygote.sock"
        self._process: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Future[bool] | None = None

    def fits(self, argv: Sequence[str], env: Mapping[str, str], memory_limit: int | None = None) -> bool:
        """Whether this container is the runner, run by the agent's interpreter with its Python environment,
        under a memory limit that leaves room for what the zygote holds (a forked child starts with all of it
        resident; below that the container is exec'd, and its limit acts as it always did)."""
        if memory_limit is not None and memory_limit < self._footprint():
            return False
        if len(argv) < 3 or list(argv[1:3]) != ["-m", RUNNER_MODULE]:
            return False
        found = shutil.which(argv[0], path=env.get("PATH", os.defpath))
        if found is None or Path(os.path.abspath(found)).parent != Path(os.path.abspath(self.python)).parent:
            return False
        return all(env.get(name) == os.environ.get(name) for name in INTERPRETER_VARIABLES)

    def _footprint(self) -> int:
        """The zygote's resident memory (0 until it runs): every child it forks starts with it."""
        process = self._process
        if process is None or process.returncode is not None:
            return 0
        return GroupedProcess.resident_of(process.pid) or 0

    def start(self) -> None:
        """Start importing now, so the first pod finds the zygote ready."""
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._start())

    async def _start(self) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._process = await asyncio.create_subprocess_exec(
                self.python, "-m", "dpkube.runner.zygote", str(self.socket),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=(self.folder / "zygote.log").open("ab"), start_new_session=True)
            assert self._process.stdout is not None
            line = await asyncio.wait_for(self._process.stdout.readline(), START_SECONDS)
        except (OSError, TimeoutError) as error:
            log.warning("zygote did not start (%s): runner pods are exec'd", error)
            await self.stop()
            return False
        if line.strip() != b"ready":
            log.warning("zygote exited while importing (see %s): runner pods are exec'd", self.folder / "zygote.log")
            await self.stop()
            return False
        log.info("zygote %d ready: runner pods are forked from it", self._process.pid)
        return True

    async def spawn(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_path: Path,
                    address_space_limit: int | None = None) -> ForkedProcess | None:
        """Fork the container from the zygote; None when the zygote is not there (the caller execs it)."""
        self.start()
        assert self._ready is not None
        if not await asyncio.shield(self._ready) or self._process is None or self._process.returncode is not None:
            return None
        if not cwd.is_dir():
            raise ContainerStartError(f'chdir to cwd ("{cwd}") set in config.json failed: no such file or directory')
        request = SpawnRequest(args=list(argv[3:]), env=dict(env), cwd=str(cwd), log=str(log_path),
                               address_space=address_space_limit)
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.socket))
            writer.write(request.model_dump_json().encode() + b"\n")
            await writer.drain()
            answer = json.loads(await reader.readline())
        except (OSError, ValueError) as error:
            log.warning("zygote refused a spawn (%s): the container is exec'd", error)
            return None
        if "pid" not in answer:
            writer.close()
            log.warning("zygote refused a spawn (%s): the container is exec'd", answer.get("error"))
            return None
        return ForkedProcess(int(answer["pid"]), reader, writer)

    async def stop(self) -> None:
        """Stop the zygote by its PID. The containers it forked are the agent's to stop first: any left then (one
        forked as the agent stopped) dies with the zygote."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
