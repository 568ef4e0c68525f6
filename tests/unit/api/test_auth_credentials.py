"""Reading credentials from a request, and the admin rule, without an API server."""

from __future__ import annotations

import base64
import hashlib

import pytest

from dpkube.api.auth import Identity, _credentials, hash_token, require_admin
from dpkube.api.errors import UnauthorizedAccessException


def basic(value: str) -> str:
    return "Basic " + base64.b64encode(value.encode()).decode()


def test_a_token_is_stored_as_its_sha256() -> None:
    assert hash_token("dpk_x") == hashlib.sha256(b"dpk_x").hexdigest()


def test_a_bearer_header_gives_the_token_and_no_claimed_user() -> None:
    assert _credentials("Bearer dpk_abc") == (None, "dpk_abc")


def test_a_basic_header_gives_the_user_name_and_the_token() -> None:
    assert _credentials(basic("alice:dpk_abc")) == ("alice", "dpk_abc")


def test_a_basic_token_may_contain_colons() -> None:
    assert _credentials(basic("alice:a:b")) == ("alice", "a:b")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Digest x", "Basic !!!", basic("alice"),
                                    basic("alice:")])
def test_anything_else_is_no_credentials(header) -> None:
    assert _credentials(header) == (None, None)


async def test_require_admin_lets_admins_through() -> None:
    assert await require_admin(Identity("root", admin=True)) == Identity("root", admin=True)


async def test_require_admin_refuses_users_with_403() -> None:
    with pytest.raises(UnauthorizedAccessException, match="alice is not an administrator"):
        await require_admin(Identity("alice"))
