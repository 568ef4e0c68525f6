"""The pages a run writes, copied in a warm runner while it waits, so its query does not pay for them.

A runner forked from the zygote shares the zygote's memory copy-on-write, and its query pays for every page
it writes first (a reference count changed is a write): 3,000 to 5,500 page copies, most of the CPU a
forked query spends beyond the same query run twice in one process. The zygote learns once, in a
throwaway child that rehearses a library (dummy rows drawn from public metadata), which pages a run
writes; a warm runner then has the kernel copy those pages (MADV_POPULATE_WRITE) before it polls for its
query. The kernel only breaks the sharing: no byte changes. Best effort: where /proc or the kernel lacks
what this needs, nothing is learnt and nothing is copied.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np  # imported where used: the zygote imports this module before it limits BLAS to one thread

PAGE = mmap.PAGESIZE
MADV_POPULATE_WRITE = 23
"""Linux 5.14: fault the range in writable, as a write would (copying shared pages), without writing."""
PRESENT_BIT, EXCLUSIVE_BIT = 63, 56
"""/proc/PID/pagemap: the page is in memory; it is mapped by this process only (a copy-on-write made it so)."""
SKIPPED = ("[vsyscall]", "[vvar]", "[vvar_vclock]")

Mapping = tuple[int, int]
"""A memory range: start and end address."""
Run = tuple[int, int]
"""Contiguous pages: start address and length in bytes."""


def private_writable_mappings() -> list[Mapping]:
    """This process's private writable memory ranges (heap, arenas, data segments, stack)."""
    found = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if fields[1].startswith("rw") and fields[1][3] == "p" and (len(fields) < 6 or fields[5] not in SKIPPED):
                start, end = (int(address, 16) for address in fields[0].split("-"))
                found.append((start, end))
    return found


def exclusive_pages(mappings: Iterable[Mapping]) -> np.ndarray:
    """Addresses of the pages of `mappings` that are present and this process's alone."""
    import numpy as np

    pages = []
    with open("/proc/self/pagemap", "rb") as pagemap:
        for start, end in mappings:
            pagemap.seek(start // PAGE * 8)
            entries = np.frombuffer(pagemap.read((end - start) // PAGE * 8), dtype=np.uint64)
            mine = ((entries >> np.uint64(PRESENT_BIT)) & (entries >> np.uint64(EXCLUSIVE_BIT)) & np.uint64(1)) == 1
            pages.append(np.uint64(start) + np.nonzero(mine)[0].astype(np.uint64) * np.uint64(PAGE))
    return np.concatenate(pages) if pages else np.empty(0, dtype=np.uint64)


def learn(run: Callable[[], None]) -> np.ndarray:
    """The pages of this process's present memory that `run` writes, found in a child that runs it and exits
    (this process is left as it was); empty when the child could not tell."""
    import numpy as np

    try:
        mappings = private_writable_mappings()
    except OSError:
        return np.empty(0, dtype=np.uint64)
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(readable)
            run()
            with os.fdopen(writable, "wb") as out:
                out.write(exclusive_pages(mappings).tobytes())
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(writable)
    with os.fdopen(readable, "rb") as answer:
        data = answer.read()
    _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return np.empty(0, dtype=np.uint64)
    return np.frombuffer(data[:len(data) // 8 * 8], dtype=np.uint64)


def runs(page_sets: Sequence[np.ndarray]) -> list[Run]:
    """The distinct pages of `page_sets`, in order, as runs of contiguous pages: one system call each."""
    import numpy as np

    if not page_sets:
        return []
    ordered = np.unique(np.concatenate(page_sets))
    if not len(ordered):
        return []
    breaks = np.nonzero(np.diff(ordered) != PAGE)[0] + 1
    starts = ordered[np.concatenate(([0], breaks))]
    lengths = np.diff(np.concatenate((np.concatenate(([0], breaks)), [len(ordered)]))) * PAGE
    return list(zip(starts.tolist(), lengths.tolist(), strict=True))


def populate(page_runs: Iterable[Run]) -> int:
    """Have the kernel copy these pages now (a range that is no longer mapped writable is skipped); the runs
    copied, 0 where the kernel has no MADV_POPULATE_WRITE."""
    with contextlib.suppress(AttributeError, OSError):
        madvise = ctypes.CDLL(None, use_errno=True).madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        done = 0
        for start, length in page_runs:
            if madvise(start, length, MADV_POPULATE_WRITE) == 0:
                done += 1
            elif ctypes.get_errno() == errno.EINVAL:  # a kernel before 5.14
                return done
        return done
    return 0
