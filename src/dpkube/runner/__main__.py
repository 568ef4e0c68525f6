"""Command line of the per-query runner: one input, one output, an exit code per failure class.

In a pod (`--claim`) the input, the leave to read the data and the output all go through the
operator's claim channel. Locally the input comes from `--input`, $DPKUBE_RUNNER_INPUT or stdin and the
output goes to `--output` and stdout. stderr gets one data-free line on failure: the failure class only.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from dpkube.engine.libraries import library_module
from dpkube.engine.rehearsal import rehearse
from dpkube.models.payloads import Library
from dpkube.models.runner import RunnerError, RunnerInput, RunnerOutput, RunnerSettings
from dpkube.runner.channel import ChannelRefused, RunnerChannel
from dpkube.runner.execute import execute, failure
from dpkube.runner.inputs import BadInput, read_input
from dpkube.runner.sinks import FileSink, OutputSink, StreamSink

REFUSED_EXIT = 5
"""The operator refused this pod (its query ended, or it is not who it says): nothing was run."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dpkube.runner", description=__doc__)
    parser.add_argument("--input", type=Path, help="RunnerInput JSON file (else $DPKUBE_RUNNER_INPUT or stdin)")
    parser.add_argument("--output", type=Path, help="write the RunnerOutput here, atomically")
    parser.add_argument("--warm", action="store_true", help="import the libraries before waiting for the input")
    parser.add_argument("--no-stdout", action="store_true", help="do not echo the output on stdout")
    parser.add_argument("--claim", action="store_true",
                        help="in a pod: input, leave to read and output through the operator's claim channel "
                             "(settings from DPKUBE_* variables)")
    return parser.parse_args(argv)


def warm_up(libraries: str, rehearsing: bool = False) -> None:
    """Import the named libraries now, so the query does not pay for it; a process that waits for its
    query (a warm pod, the zygote) also rehearses them, which fills the caches of their first run."""
    for name in filter(None, (n.strip() for n in libraries.split(","))):
        module = library_module(Library(name))
        getattr(module, "warm_up", lambda: None)()  # what only a run needs (torch for the synthesizers)
        if rehearsing:
            rehearse(Library(name))


def run(job: RunnerInput, settings: RunnerSettings, before_read: Callable[[], None] = lambda: None) -> RunnerOutput:
    """Execute; an unexpected exception becomes an internal error named by its class only."""
    try:
        return execute(job, before_read=before_read)
    except ChannelRefused:
        raise
    except Exception as e:
        if settings.runner_debug:
            traceback.print_exc()
        return failure(e)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one query and report it."""
    args = parse_args(argv)
    settings = RunnerSettings()
    if args.warm or args.claim:
        warm_up(settings.libraries, rehearsing=args.warm)
    if args.claim:
        channel = RunnerChannel(settings)
        try:
            claim = channel.claim()
            output = run(claim.input, settings, (lambda: None) if claim.read_allowed else channel.allow_read)
            channel.deliver(output)
        except ChannelRefused as refused:
            print(f"dpkube-runner: {refused}", file=sys.stderr)
            return REFUSED_EXIT
    else:
        try:
            job = read_input(args.input, wait=args.warm, timeout=settings.wait_timeout)
        except BadInput as e:
            output = RunnerOutput(ok=False, error=RunnerError(kind="bad_input", message=str(e)))
        else:
            output = run(job, settings)
        sinks: list[OutputSink] = [] if args.no_stdout else [StreamSink()]
        if args.output is not None:
            sinks.insert(0, FileSink(args.output))
        for sink in sinks:
            sink.write(output)
    if output.error is None:
        return 0
    print(f"dpkube-runner: {output.error.kind}", file=sys.stderr)
    return output.error.kind.exit_code


if __name__ == "__main__":
    sys.exit(main())
