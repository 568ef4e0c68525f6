"""Local processes as the tests see them."""

from __future__ import annotations

from pathlib import Path


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an orphan killed by the agent waits for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])
