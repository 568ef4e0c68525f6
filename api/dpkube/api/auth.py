"""Who is calling: API tokens (Bearer, or HTTP Basic user + token), cluster tokens, or a trusted header.

API tokens are random strings stored only as sha256 hashes in a Secret of the system namespace,
so a leaked Secret spends nobody's budget. Tokens not found there are asked to the API server
(TokenReview), which makes every cluster identity (people, service accounts) usable as is.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from dpkube.api.errors import InternalServerException, NotAuthenticated, UnauthorizedAccessException
from dpkube.api.settings import ApiSettings
from dpkube.k8s.client import ApiError, KubeClient, NotFound, core_path
from dpkube.k8s.tokens import hash_token

USER_HEADER = "user-name"
"""The Lomas identity header (FastAPI's form of its `user_name` parameter)."""
TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class Identity:
    """An authenticated caller."""

    user: str
    admin: bool = False
    source: str = "token"
    """token (API token), cluster (TokenReview) or header (trusted `user-name`)."""


class Authenticator:
    """Turns a request's credentials into an Identity; successful look-ups are cached briefly."""

    def __init__(self, client: KubeClient, settings: ApiSettings) -> None:
        self.client = client
        self.settings = settings
        self._cache: dict[str, tuple[float, Identity]] = {}

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

    async def _identity(self, token: str) -> Identity | None:
        key = hash_token(token)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        identity = await self._from_secret(key) or await self._from_cluster(token)
        if identity is not None and self.settings.auth_cache_seconds > 0:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + self.settings.auth_cache_seconds, identity)
        return identity

    async def _from_secret(self, key: str) -> Identity | None:
        try:
            secret = await self.client.get(core_path("secrets", self.settings.system_namespace,
                                                     self.settings.token_secret))
        except NotFound:
            return None
        raw = (secret.get("data") or {}).get(key)
        if raw is None:
            return None
        try:
            entry = json.loads(base64.b64decode(raw))
            return Identity(str(entry["user"]), bool(entry.get("admin", False)), "token")
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise InternalServerException("unreadable entry in the API token Secret") from None

    async def _from_cluster(self, token: str) -> Identity | None:
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        try:
            result: dict[str, Any] = await self.client.create(TOKEN_REVIEW_PATH, review)
        except ApiError as exc:
            raise InternalServerException(f"TokenReview failed: {exc.status} {exc.reason}") from None
        status = result.get("status") or {}
        if not status.get("authenticated"):
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
    """FastAPI dependency: the caller, or 401."""
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.identify(request)


async def require_admin(identity: Annotated[Identity, Depends(authenticate)]) -> Identity:
    """FastAPI dependency for admin-only routes: 403 for everyone else."""
    if not identity.admin:
        raise UnauthorizedAccessException(f"{identity.user} is not an administrator.")
    return identity


Caller = Annotated[Identity, Depends(authenticate)]
Admin = Annotated[Identity, Depends(require_admin)]
