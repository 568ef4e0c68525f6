"""A module that takes IMPORT_SECONDS to import, like a DP library: the pool must not count that against a job."""

from __future__ import annotations

import os
import time

IMPORT_SECONDS = 1.0

time.sleep(IMPORT_SECONDS)


def pid() -> int:
    return os.getpid()
