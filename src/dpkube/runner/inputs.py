"""Where a RunnerInput comes from: a file (waited for in warm mode), an env variable or stdin."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from dpkube.models.runner import RunnerInput

ENV_INPUT = "DPKUBE_RUNNER_INPUT"
POLL_SECONDS = 0.05


class BadInput(Exception):
    """The runner's input is missing or malformed; the message names the field, not values."""


def parse(text: str) -> RunnerInput:
    """Validate the JSON text; errors list field paths and reasons, never input values."""
    try:
        return RunnerInput.model_validate_json(text)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}" for err in e.errors()[:5]
        )
        raise BadInput(f"invalid runner input: {problems}") from None


def wait_for_file(path: Path, timeout: float) -> str:
    """Poll until `path` exists (written atomically by whoever hands the pod its query)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise BadInput(f"no input appeared at {path} within {timeout:g} s")
        time.sleep(POLL_SECONDS)
    return path.read_text()


def read_input(path: Path | None, wait: bool, timeout: float, stdin: TextIO | None = None) -> RunnerInput:
    """The one input: `--input` file (polled for when warm), else $DPKUBE_RUNNER_INPUT, else stdin."""
    if path is not None:
        if wait:
            return parse(wait_for_file(path, timeout))
        try:
            return parse(path.read_text())
        except OSError as e:
            raise BadInput(f"cannot read input file: {e.strerror}") from None
    if not wait and os.environ.get(ENV_INPUT):
        return parse(os.environ[ENV_INPUT])
    text = (stdin or sys.stdin).read()
    if not text.strip():
        raise BadInput(f"no input: pass --input FILE, set {ENV_INPUT} or write JSON to stdin")
    return parse(text)
