"""Who is calling: API tokens (Bearer, or HTTP Basic user + token), cluster tokens, or a trusted header.

API tokens are random strings (prefixed `dpk_`) stored only as sha256 hashes in a Secret of the system
namespace, so a leaked Secret spends nobody's budget. Other tokens are asked to the API server
(TokenReview, for the configured audiences), which makes every cluster identity usable as is.

A flood of bad tokens costs the API server next to nothing: the Secret is read by one request at a
time, at most every READ_INTERVAL seconds, for everyone waiting; a failed token is refused from memory
for a while; TokenReviews run a few at a time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from dpkube.api.errors import (
    SESSION_COOKIE,
    InternalServerException,
    NotAuthenticated,
    ServiceBusy,
    UnauthorizedAccessException,
)
from dpkube.api.services.quotas import RateLimiter
from dpkube.api.settings import ApiSettings
from dpkube.k8s.client import ApiError, KubeClient, NotFound, core_path
from dpkube.k8s.tokens import TOKEN_PREFIX, hash_token

log = logging.getLogger(__name__)

USER_HEADER = "user-name"
"""The Lomas identity header (FastAPI's form of its `user_name` parameter)."""
TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
CACHE_LIMIT = 10_000
"""Entries of each cache (successes, failures): a flood of distinct tokens cannot grow memory past it."""
READ_INTERVAL = 0.1
"""Least time between two reads of the token Secret."""
CONCURRENT_REVIEWS = 8
WAITING_REVIEWS = 64
"""TokenReviews waiting for their turn; more sign-ins at once are answered 503."""


@dataclass(frozen=True)
class Identity:
    """An authenticated caller."""

    user: str
    admin: bool = False
    source: str = "token"
    """token (API token), cluster (TokenReview) or header (trusted `user-name`)."""


class TokenSecret:
    """The entries of the API token Secret, read once for every request that waits, never more often than
    every READ_INTERVAL seconds."""

    def __init__(self, client: KubeClient, namespace: str, name: str) -> None:
        self.client = client
        self.path = core_path("secrets", namespace, name)
        self.entries: dict[str, str] = {}
        self.read_at = -math.inf
        """When the read that gave `entries` started (monotonic)."""
        self._reading: asyncio.Task[None] | None = None

    async def since(self, moment: float) -> dict[str, str]:
        """The entries as read at `moment` or later."""
        while self.read_at < moment:
            if self._reading is None or self._reading.done():
                self._reading = asyncio.create_task(self._read())
            await asyncio.shield(self._reading)
        return self.entries

    async def _read(self) -> None:
        pause = self.read_at + READ_INTERVAL - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        started = time.monotonic()
        try:
            secret = await self.client.get(self.path)
        except NotFound:
            secret = {}
        self.entries, self.read_at = dict(secret.get("data") or {}), started


class Authenticator:
    """Turns a request's credentials into an Identity; successes and failures are cached briefly."""

    def __init__(self, client: KubeClient, settings: ApiSettings) -> None:
        self.client = client
        self.settings = settings
        self.tokens = TokenSecret(client, settings.system_namespace, settings.token_secret)
        self._cache: dict[str, tuple[float, Identity]] = {}
        self._failures: OrderedDict[str, float] = OrderedDict()
        self._reviews = asyncio.Semaphore(CONCURRENT_REVIEWS)
        self._waiting_reviews = 0

    async def identify(self, request: Request) -> Identity:
        header_user = request.headers.get(USER_HEADER)
        if self.settings.trusted_header and header_user:
            return Identity(header_user, source="header")
        claimed, token = _credentials(request.headers.get("authorization"))
        if token is None:
            raise NotAuthenticated("Authentication required: send an API token (Bearer or Basic).")
        identity = await self._identity(token)
        if identity is None or (claimed is not None and claimed != identity.user):
            raise NotAuthenticated("Invalid credentials.")
        if header_user and header_user != identity.user:
            raise UnauthorizedAccessException(
                f"User {header_user} is not the authenticated user {identity.user}.")
        return identity

    async def identify_page(self, request: Request) -> Identity:
        """The caller of a dashboard page: the trusted header where that mode is on, else the token of the
        session cookie (checked as a Bearer token is); the API routes never read the cookie."""
        header_user = request.headers.get(USER_HEADER)
        if self.settings.trusted_header and header_user:
            return Identity(header_user, source="header")
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise NotAuthenticated("Sign in with your API token.")
        identity = await self._identity(token)
        if identity is None:
            raise NotAuthenticated("Invalid credentials.")
        return identity

    async def check_token(self, token: str) -> Identity:
        """The identity of a token a user signs in with (401 when it is not valid)."""
        identity = await self._identity(token) if token else None
        if identity is None:
            raise NotAuthenticated("Invalid credentials.")
        return identity

    async def _identity(self, token: str) -> Identity | None:
        """The token's identity, trusted for auth_cache_seconds after the read that found it (the revocation
        delay); None for a bad token, remembered for auth_failure_cache_seconds."""
        key = hash_token(token)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        failed_until = self._failures.get(key)
        if failed_until is not None and failed_until > now:
            return None
        if token.startswith(TOKEN_PREFIX):
            identity = await self._from_secret(key, now)
            checked = self.tokens.read_at
        else:
            identity = await self._from_cluster(token)
            checked = now
        if identity is None:
            self._remember_failure(key, now)
        elif self.settings.auth_cache_seconds > 0:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = (checked + self.settings.auth_cache_seconds, identity)
        return identity

    def _remember_failure(self, key: str, now: float) -> None:
        if self.settings.auth_failure_cache_seconds <= 0:
            return
        self._failures[key] = now + self.settings.auth_failure_cache_seconds
        self._failures.move_to_end(key)
        while len(self._failures) > CACHE_LIMIT:
            self._failures.popitem(last=False)

    async def _from_secret(self, key: str, arrived: float) -> Identity | None:
        """The token's entry, from a read no older than the cache time, else from a read after `arrived`."""
        raw = (await self.tokens.since(arrived - self.settings.auth_cache_seconds)).get(key)
        if raw is None:
            raw = (await self.tokens.since(arrived)).get(key)
        if raw is None:
            return None
        try:
            entry = json.loads(base64.b64decode(raw))
            return Identity(str(entry["user"]), bool(entry.get("admin", False)), "token")
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise InternalServerException("unreadable entry in the API token Secret") from None

    async def _from_cluster(self, token: str) -> Identity | None:
        """A TokenReview for our audiences; the answer must name one of them (an audience-aware check)."""
        if self._waiting_reviews >= WAITING_REVIEWS:
            raise ServiceBusy("Too many sign-ins at once. Retry after 1 s.")
        audiences = self.settings.token_review_audiences
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                  "spec": {"token": token, "audiences": audiences}}
        self._waiting_reviews += 1
        try:
            await self._reviews.acquire()
        finally:
            self._waiting_reviews -= 1
        try:
            result: dict[str, Any] = await self.client.create(TOKEN_REVIEW_PATH, review)
        except ApiError as exc:
            raise InternalServerException(f"TokenReview failed: {exc.status} {exc.reason}") from None
        finally:
            self._reviews.release()
        status = result.get("status") or {}
        if not status.get("authenticated"):
            return None
        if not set(status.get("audiences") or []) & set(audiences):
            log.warning("TokenReview answered for none of our audiences", extra={"audiences": audiences})
            return None
        user = status.get("user") or {}
        groups = user.get("groups") or []
        return Identity(user["username"], self.settings.admin_group in groups, "cluster")


def _credentials(authorization: str | None) -> tuple[str | None, str | None]:
    """(claimed user, token) from a Bearer or Basic Authorization header."""
    if not authorization:
        return None, None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return None, value
    if scheme.lower() == "basic" and value:
        try:
            user, sep, token = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        return (user, token) if sep and token else (None, None)
    return None, None


async def authenticate(request: Request) -> Identity:
    """FastAPI dependency: the caller (401 without one), within their request rate (429 past it)."""
    authenticator: Authenticator = request.app.state.authenticator
    return _within_rate(request, await authenticator.identify(request))


async def require_admin(identity: Annotated[Identity, Depends(authenticate)]) -> Identity:
    """FastAPI dependency for admin-only routes: 403 for everyone else."""
    if not identity.admin:
        raise UnauthorizedAccessException(f"{identity.user} is not an administrator.")
    return identity


async def authenticate_page(request: Request) -> Identity:
    """FastAPI dependency of the dashboard's pages: the same identities and request rate as the API."""
    authenticator: Authenticator = request.app.state.authenticator
    return _within_rate(request, await authenticator.identify_page(request))


def _within_rate(request: Request, identity: Identity) -> Identity:
    """The caller, once their request is counted against their rate (429 past it)."""
    rates: RateLimiter = request.app.state.rates
    rates.take(identity.user)
    return identity


async def require_page_admin(identity: Annotated[Identity, Depends(authenticate_page)]) -> Identity:
    """The dashboard's admin pages: 403 for everyone else, as `require_admin`."""
    return await require_admin(identity)


Caller = Annotated[Identity, Depends(authenticate)]
Admin = Annotated[Identity, Depends(require_admin)]
Viewer = Annotated[Identity, Depends(authenticate_page)]
PageAdmin = Annotated[Identity, Depends(require_page_admin)]
