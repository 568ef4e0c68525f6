"""Where a RunnerOutput goes: a tiny protocol, so the operator can add an API-backed sink."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Protocol, TextIO

from dpkube.models.runner import RunnerOutput


class OutputSink(Protocol):
    """Receives the one output of a run."""

    def write(self, output: RunnerOutput) -> None:
        """Deliver the output; raise if it could not be delivered."""


def encode(output: RunnerOutput) -> str:
    """The output as one line of JSON (snake_case, the Lomas wire names)."""
    return output.model_dump_json(by_alias=False)


class FileSink:
    """Writes the output to a file atomically: readers see no file or the whole file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, output: RunnerOutput) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(encode(output))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class StreamSink:
    """Writes the output as one JSON line to a stream (stdout: the pod's log)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def write(self, output: RunnerOutput) -> None:
        stream = self.stream or sys.stdout
        stream.write(encode(output) + "\n")
        stream.flush()
