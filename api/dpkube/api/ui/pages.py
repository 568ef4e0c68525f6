"""Pages rendered on the server with Jinja2 (autoescaped), sent with a strict Content Security Policy: no
script runs on them, and everything they load comes from the facade itself."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from dpkube.api.ui import charts

HERE = Path(__file__).parent
STATIC = HERE / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def when(seconds: float | None) -> str:
    """A Unix time as UTC, to the second ('' for none)."""
    if seconds is None:
        return ""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def amount(value: float | None) -> str:
    """A budget amount, short: 0.1, 1e-05 ('' for none)."""
    return "" if value is None else f"{value:.6g}"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = when
    env.filters["amount"] = amount
    env.globals["budget_bar"] = lambda *args, **kwargs: Markup(charts.budget_bar(*args, **kwargs))
    env.globals["step_chart"] = lambda *args, **kwargs: Markup(charts.step_chart(*args, **kwargs))
    return env


ENVIRONMENT = _environment()


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page, with the headers every dashboard page carries."""
    body = ENVIRONMENT.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)
