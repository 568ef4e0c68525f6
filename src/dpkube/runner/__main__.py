"""Command line of the per-query runner: one input, one output, an exit code per failure class.

Exit codes: 0 released; 2 refused (invalid query, payload rejected, bad runner input); 3 the DP
library failed; 4 the dataset could not be read; 1 internal error. stderr gets one short,
data-free line on failure (set DPKUBE_RUNNER_DEBUG=1 for tracebacks on internal errors).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path

from dpkube.engine.libraries import library_module
from dpkube.k8s.results import SecretSink
from dpkube.models.payloads import Library
from dpkube.models.runner import ErrorKind, RunnerError, RunnerInput, RunnerOutput
from dpkube.runner.claim import claim
from dpkube.runner.execute import execute
from dpkube.runner.inputs import BadInput, read_input
from dpkube.runner.sinks import FileSink, OutputSink, StreamSink


class ExitCode(IntEnum):
    """The process's exit status, one per failure class."""

    OK = 0
    INTERNAL = 1
    REFUSED = 2
    LIBRARY = 3
    DATASET = 4


EXIT_CODES = {
    ErrorKind.INVALID_QUERY: ExitCode.REFUSED,
    ErrorKind.PAYLOAD_REJECTED: ExitCode.REFUSED,
    ErrorKind.BAD_INPUT: ExitCode.REFUSED,
    ErrorKind.EXTERNAL_LIBRARY: ExitCode.LIBRARY,
    ErrorKind.DATASET_UNAVAILABLE: ExitCode.DATASET,
    ErrorKind.INTERNAL: ExitCode.INTERNAL,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dpkube.runner", description=__doc__)
    parser.add_argument("--input", type=Path, help="RunnerInput JSON file (else $DPKUBE_RUNNER_INPUT or stdin)")
    parser.add_argument("--output", type=Path, help="write the RunnerOutput here, atomically")
    parser.add_argument("--warm", action="store_true", help="import the libraries, then wait for the input")
    parser.add_argument(
        "--libraries",
        default=",".join(lib.value for lib in Library),
        help="libraries to import when warm (comma-separated; default: all)",
    )
    parser.add_argument("--wait-timeout", type=float, default=3600.0, help="seconds to wait when warm")
    parser.add_argument("--no-stdout", action="store_true", help="do not echo the output on stdout")
    parser.add_argument(
        "--claim",
        action="store_true",
        help="get the input from the operator's claim endpoint (env DPKUBE_CLAIM_URL and _TOKEN)",
    )
    parser.add_argument(
        "--result-secret", action="store_true", help="store the output in the query's result Secret (inside a pod)"
    )
    return parser.parse_args(argv)


def warm_up(libraries: str) -> None:
    """Import the named libraries now, so the query does not pay for it."""
    for name in filter(None, (n.strip() for n in libraries.split(","))):
        library_module(Library(name))


def run(args: argparse.Namespace, job: RunnerInput | None = None) -> RunnerOutput:
    """Read, execute and return the output; only unexpected exceptions escape as internal errors."""
    if job is None:
        if args.warm:
            warm_up(args.libraries)
        try:
            job = read_input(args.input, wait=args.warm, timeout=args.wait_timeout)
        except BadInput as e:
            return RunnerOutput(ok=False, error=RunnerError(kind=ErrorKind.BAD_INPUT, message=str(e)))
    try:
        return execute(job)
    except Exception as e:
        if os.environ.get("DPKUBE_RUNNER_DEBUG"):
            traceback.print_exc()
        message = f"internal error ({type(e).__name__})"
        return RunnerOutput(ok=False, error=RunnerError(kind=ErrorKind.INTERNAL, message=message))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one query and report it through the sinks."""
    args = parse_args(argv)
    job, uid = None, os.environ.get("DPKUBE_QUERY_UID", "")
    if args.claim:
        warm_up(args.libraries)
        claimed = claim(
            os.environ["DPKUBE_CLAIM_URL"],
            os.environ["DPKUBE_POD_NAMESPACE"],
            os.environ["DPKUBE_POD_NAME"],
            os.environ["DPKUBE_CLAIM_TOKEN"],
            give_up_after=args.wait_timeout,
        )
        job, uid = claimed.input, claimed.uid
    sinks: list[OutputSink] = [] if args.no_stdout else [StreamSink()]
    if args.output is not None:
        sinks.insert(0, FileSink(args.output))
    if args.result_secret:
        sinks.insert(0, SecretSink(os.environ["DPKUBE_POD_NAMESPACE"], uid))
    output = run(args, job)
    for sink in sinks:
        sink.write(output)
    if output.error is None:
        return ExitCode.OK
    print(f"dpkube-runner: {output.error.kind}: {output.error.message}", file=sys.stderr)
    return EXIT_CODES[output.error.kind]


if __name__ == "__main__":
    sys.exit(main())
