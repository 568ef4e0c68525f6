"""Live progress of a query the CLI waits for: a status line redrawn in place on a terminal (rich), plain
lines otherwise (a log or a pipe gets one line per change of phase or queue position, never a redraw)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.status import Status
from rich.text import Text

from dpkube.models.progress import QueryProgress


class ProgressView:
    """Shows what the CLI is doing and where a query stands; a context manager around the wait."""

    def __init__(self, out: TextIO | None = None, *, live: bool | None = None) -> None:
        self.out = out or sys.stderr
        self.live = self.out.isatty() if live is None else live
        self.started = time.monotonic()
        self._shown: tuple[str, int | None] | None = None
        self._status: Status | None = None

    def __enter__(self) -> ProgressView:
        if self.live:
            self._status = Status("", console=Console(file=self.out, stderr=self.out is sys.stderr))
            self._status.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def note(self, message: str) -> None:
        """A line that stays (submitted, created, done, failed), stamped with the time since the start."""
        line = f"[{time.monotonic() - self.started:7.2f}s] {message}"
        if self._status is not None:
            self._status.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=self.out, flush=True)

    def update(self, progress: QueryProgress) -> None:
        """The query's progress: a line that stays when its phase changes (elsewhere than a terminal, also when
        its queue position does), and on a terminal a status line redrawn with every update."""
        shown = (progress.phase.value, None if self._status is not None else progress.queue_position)
        if shown != self._shown:
            self._shown = shown
            self.note(progress.line())
        if self._status is not None:
            self._status.update(Text(progress.line()))
