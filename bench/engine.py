"""Time the DP engine per library on the seed examples, and each library's import in a fresh process.

Columns: import (s, fresh interpreter, engine module + library), cost (ms, warm, memo bypassed),
real (ms, run on PENGUIN), dummy (ms, run on 100 dummy rows, seed 42), cold runner (s, a whole
`python -m dpkube.runner` process on PENGUIN). Medians over --repeat runs.

    python bench/engine.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dpkube.engine import cost as cost_module
from dpkube.engine.datasets import demo_metadata, load_frame
from dpkube.engine.dummy import dummy_frame
from dpkube.engine.libraries import MODULES, library_module
from dpkube.engine.release import run_query
from dpkube.models.examples import query_payload
from dpkube.models.payloads import Library

IMPORT_PROBE = (
    "import time; t = time.perf_counter(); import importlib; "
    "importlib.import_module({module!r}); print(time.perf_counter() - t)"
)


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def import_seconds(module: str, repeat: int) -> float:
    """Median import time of `module` in fresh interpreters (what a cold runner pays)."""
    samples = []
    for _ in range(repeat):
        probe = IMPORT_PROBE.format(module=module)
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip()))
    return statistics.median(samples)


def cold_runner_seconds(library: Library, metadata_dict: dict) -> float:
    """Wall time of one whole runner process on the real demo data."""
    job = {
        "library": library.value,
        "payload": query_payload(library),
        "dataset": {"uri": "demo://PENGUIN", "metadata": metadata_dict},
    }
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.json"
        source.write_text(json.dumps(job))
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "dpkube.runner", "--input", str(source), "--no-stdout"],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    metadata = demo_metadata("PENGUIN")
    real = load_frame("demo://PENGUIN", metadata)
    dummy = dummy_frame(metadata, 100, 42)
    base = import_seconds("dpkube.engine.release", args.repeat)
    print(f"engine core import (no DP library): {base:.2f} s")
    header = f"{'library':<17} {'import s':>9} {'cost ms':>9} {'real ms':>9} {'dummy ms':>9} {'cold runner s':>14}"
    print(header)
    print("-" * len(header))
    for library in Library:
        imported = import_seconds(MODULES[library], args.repeat)
        module = library_module(library)
        payload = cost_module.as_payload(library, query_payload(library))
        module.cost(payload, metadata)
        repeat = max(1, args.repeat // 2) if library is Library.SMARTNOISE_SYNTH else args.repeat
        cost_s = median_seconds(lambda: module.cost(payload, metadata), args.repeat)  # noqa: B023
        real_s = median_seconds(lambda: run_query(library, payload, metadata, real), repeat)  # noqa: B023
        dummy_s = median_seconds(lambda: run_query(library, payload, metadata, dummy), repeat)  # noqa: B023
        cold = cold_runner_seconds(library, metadata.lomas_dict())
        print(
            f"{library.value:<17} {imported:>9.2f} {cost_s * 1e3:>9.1f} {real_s * 1e3:>9.1f} "
            f"{dummy_s * 1e3:>9.1f} {cold:>14.2f}"
        )
    memo = median_seconds(
        lambda: cost_module.estimate_cost(Library.SMARTNOISE_SQL, query_payload(Library.SMARTNOISE_SQL), metadata),
        args.repeat,
    )
    print(f"estimate_cost, memoised repeat (smartnoise-sql seed): {memo * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
