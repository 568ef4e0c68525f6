"""The API token store: random tokens kept only as sha256 hashes in a Secret of the operator's namespace.

The facade checks tokens against it; admins (CLI, `make dev`) issue them. A leaked Secret spends nobody's
budget, and a token is shown once, when it is created.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

from dpkube.k8s.client import Conflict, KubeClient, NotFound, core_path

TOKEN_PREFIX = "dpk_"
TOKEN_SECRET = "dpkube-api-tokens"


def hash_token(token: str) -> str:
    """The key a token is stored under: sha256, hex (a valid Secret data key)."""
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(client: KubeClient, namespace: str, user: str, *, admin: bool = False,
                       secret: str = TOKEN_SECRET) -> str:
    """Issue an API token for `user` and return it; only its hash is stored, so this is the one chance to see it."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    entry = base64.b64encode(json.dumps({"user": user, "admin": admin}).encode()).decode()
    path = core_path("secrets", namespace, secret)
    patch = {"data": {hash_token(token): entry}}
    try:
        await client.patch(path, patch)
    except NotFound:
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": secret, "namespace": namespace,
                             "labels": {"app.kubernetes.io/part-of": "dpkube"}}, **patch}
        try:
            await client.create(core_path("secrets", namespace), body)
        except Conflict:
            await client.patch(path, patch)
    return token
