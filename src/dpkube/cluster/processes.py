"""The cluster's processes as recorded in its state file, so that `dpkube cluster down`, run by another
process than the one that started them, stops each one by its PID, and only if the PID is still that program."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Recorded:
    """A process by PID and by its argv[0], which tells it from a later process that reuses the PID."""

    name: str
    pid: int
    program: str

    def alive(self) -> bool:
        try:
            argv0 = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        if state == "Z":
            self._reap()
            return False
        # An exiting process has no command line for a moment: still this one until it is a zombie.
        return argv0 in (self.program, "")

    def _reap(self) -> None:
        """Collect the exit status when the process is a child of this one (the fixture's case)."""
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            if not self.alive():
                return
            os.kill(self.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self.alive():
                    return
                time.sleep(0.1)

    def to_json(self) -> dict:
        return {"name": self.name, "pid": self.pid, "program": self.program}
