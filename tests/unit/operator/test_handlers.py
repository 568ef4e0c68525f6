"""What the operator registers with kopf, as the settings it runs with assume."""

from __future__ import annotations

import kopf

from dpkube.operator import handlers  # noqa: F401  (registers the handlers)


def test_the_operator_registers_only_event_handlers_so_it_needs_no_diff_base() -> None:
    registry = kopf.get_default_registry()
    assert registry._watching.get_all_handlers()
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()
