"""The dashboard's forms are checked twice before anything is done: the double-submit CSRF token (the
hidden field must equal the CSRF cookie, which another site can neither read nor set) and the Origin
(or, without one, the Referer) of the request, which must be the facade's own host."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from fastapi import Request, Response

from dpkube.api.errors import SESSION_COOKIE, UI_PREFIX, FormRefused, InvalidQueryException

CSRF_COOKIE = "dpkube_csrf"
CSRF_FIELD = "csrf"
FORM_TYPE = "application/x-www-form-urlencoded"


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser: its cookie's, or a new one (set it with `keep_cookies`)."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def keep_csrf(request: Request, response: Response, token: str) -> None:
    """Set the CSRF cookie when the browser does not have it yet."""
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, path=UI_PREFIX, httponly=True, samesite="strict",
                            secure=_secure(request))


def sign_in(request: Request, response: Response, token: str) -> None:
    """Keep the API token in the session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's
    page sends it), for /ui only (the API routes never read it)."""
    response.set_cookie(SESSION_COOKIE, token, path=UI_PREFIX, httponly=True, samesite="strict",
                        secure=_secure(request))


def sign_out(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=UI_PREFIX)


def same_origin(request: Request) -> bool:
    """The request comes from a page of this host: its Origin, else its Referer, names the Host it was sent to."""
    source = request.headers.get("origin")
    if not source or source == "null":
        source = request.headers.get("referer")
    host = request.headers.get("host")
    return bool(source and host) and urlsplit(source).netloc == host


async def checked_form(request: Request) -> dict[str, str]:
    """The fields of a dashboard form, once its origin and CSRF token are checked (403 otherwise)."""
    if not same_origin(request):
        raise FormRefused("This form was not sent from this site's own pages.")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        raise InvalidQueryException(f"Expected a form ({FORM_TYPE}).")
    try:
        fields = {k: v[0] for k, v in parse_qs((await request.body()).decode(), strict_parsing=False).items()}
    except UnicodeDecodeError:
        raise InvalidQueryException("The form is not UTF-8.") from None
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = fields.get(CSRF_FIELD, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise FormRefused("This form's CSRF token is missing or stale: reload the page and try again.")
    return fields
