"""Child processes of the local platform (etcd, kube-apiserver, operator, node agent, facade).

Each runs in its own session with its output in a log file, and is stopped by its PID: SIGTERM,
then SIGKILL after a grace period. `kill` is a crash on purpose (tests of restarts).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class NotReady(RuntimeError):
    """A child process exited, or never answered 200, while it was awaited; the message carries its log."""


@dataclass
class ChildProcess:
    """One platform process."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> ChildProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def resident_bytes(self) -> int:
        """Its resident memory now (VmRSS), for benchmarks; 0 when it is not running."""
        return self._memory("VmRSS")

    def peak_resident_bytes(self) -> int:
        """Its peak resident memory so far (VmHWM); 0 when it is not running."""
        return self._memory("VmHWM")

    def _memory(self, field: str) -> int:
        if not self.running():
            return 0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        return 0

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.running():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, grace: float = 10.0) -> None:
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def wait_until_ok(self, url: str, timeout: float) -> None:
        """Poll `url` (a server this process runs) until it answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise NotReady(f"{self.name} exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise NotReady(f"{self.name} never answered 200 at {url}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
