"""A container's termination message, read with the kubelet's limits.

The kubelet reads at most the last 4096 bytes of the termination-message file; with
`FallbackToLogsOnError`, a failed container whose file is empty gets the last 80 lines of its output,
cut to 2048 bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_MESSAGE_BYTES = 4096
LOG_TAIL_LINES = 80
LOG_TAIL_BYTES = 2048


def termination_message(message_file: Path, log_file: Path, *, exit_code: int, policy: str | None) -> str:
    message = _tail_bytes(message_file, MAX_MESSAGE_BYTES)
    if not message and exit_code != 0 and policy == "FallbackToLogsOnError":
        message = log_tail(log_file)
    return message.decode(errors="replace")


def log_tail(log_file: Path, lines: int = LOG_TAIL_LINES, limit: int = LOG_TAIL_BYTES) -> bytes:
    """The first `limit` bytes of the last `lines` lines (kubectl logs --tail=80 --limit-bytes=2048)."""
    window = _tail_bytes(log_file, max(limit * 64, 256 * 1024))
    return b"".join(window.splitlines(keepends=True)[-lines:])[:limit]


def _tail_bytes(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - limit))
            return handle.read()
    except OSError:
        return b""
