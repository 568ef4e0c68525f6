"""The kubelet rules the node agent reimplements, checked without an API server."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dpkube.nodeagent.binder import wants_binding
from dpkube.nodeagent.expansion import expand
from dpkube.nodeagent.quantity import parse_quantity
from dpkube.nodeagent.termination import termination_message


@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)-$(B)", "1-$(B)"),
    ("$$(A)", "$(A)"),
    ("$$$(A)", "$1"),
    ("cost $5", "cost $5"),
    ("$(A", "$(A"),
    ("tail$", "tail$"),
    ("$()", "$()"),
])
def test_dollar_paren_expansion_follows_the_kubelet(text: str, expected: str) -> None:
    assert expand(text, {"A": "1"}) == expected


@pytest.mark.parametrize(("scheduler", "bound"), [(None, True), ("", True), ("default-scheduler", True),
                                                  ("volcano", False)])
def test_default_binder_takes_pods_without_or_with_the_default_scheduler(scheduler: str | None,
                                                                         bound: bool) -> None:
    spec = {} if scheduler is None else {"schedulerName": scheduler}
    assert wants_binding({"metadata": {}, "spec": spec}) is bound


def test_pods_being_deleted_or_already_bound_are_not_bound() -> None:
    assert not wants_binding({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {}})
    assert not wants_binding({"metadata": {}, "spec": {"nodeName": "elsewhere"}})


@pytest.mark.parametrize(("text", "value"), [("512Mi", 512 * 2**20), ("1G", 10**9), ("250m", Decimal("0.25")),
                                              ("2", 2), ("1.5Gi", 3 * 2**29)])
def test_quantities_parse_exactly(text: str, value: Decimal | int) -> None:
    assert parse_quantity(text) == value


def test_log_fallback_applies_only_to_failures_with_an_empty_message(tmp_path: Path) -> None:
    message, log = tmp_path / "message", tmp_path / "log"
    message.write_text("")
    log.write_text("".join(f"{i}\n" for i in range(200)))
    assert termination_message(message, log, exit_code=0, policy="FallbackToLogsOnError") == ""
    assert termination_message(message, log, exit_code=1, policy="File") == ""
    tail = termination_message(message, log, exit_code=1, policy="FallbackToLogsOnError")
    assert tail.splitlines() == [str(i) for i in range(120, 200)]
    message.write_text("explicit")
    assert termination_message(message, log, exit_code=1, policy="FallbackToLogsOnError") == "explicit"
