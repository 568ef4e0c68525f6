"""Read one object from S3 (or any S3-compatible store) with a SigV4-signed GET over httpx.

A few dozen lines instead of boto3 (about 100 MB) in every runner image. Credentials come from the
standard AWS environment variables, which is how a pod receives a Kubernetes Secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from dpkube.engine.errors import DatasetUnavailable

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class S3Credentials:
    """Where and as whom to read: endpoint, region and keys (the session token is optional)."""

    access_key_id: str
    secret_access_key: str
    region: str
    endpoint_url: str
    session_token: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Credentials:
        """The AWS SDK's variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, ..."""
        env = os.environ if env is None else env
        key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if not key_id or not secret:
            raise DatasetUnavailable(
                "s3:// datasets need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
            )
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or f"https://s3.{region}.amazonaws.com"
        return cls(key_id, secret, region, endpoint.rstrip("/"), env.get("AWS_SESSION_TOKEN"))


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign_get(
    creds: S3Credentials, host: str, path: str, now: datetime, extra_headers: Mapping[str, str]
) -> dict[str, str]:
    """The headers of a SigV4-signed GET of `path` on `host` (unsigned payload hash of b"")."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {
        "host": host,
        "x-amz-content-sha256": EMPTY_SHA256,
        "x-amz-date": amz_date,
        **{k.lower(): v for k, v in extra_headers.items()},
    }
    if creds.session_token:
        headers["x-amz-security-token"] = creds.session_token
    names = sorted(headers)
    canonical = "\n".join(
        [
            "GET",
            path,
            "",
            "".join(f"{n}:{headers[n].strip()}\n" for n in names),
            ";".join(names),
            EMPTY_SHA256,
        ]
    )
    scope = f"{day}/{creds.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + creds.secret_access_key).encode(), day)
    for part in (creds.region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return headers


def get_object(bucket: str, key: str, max_bytes: int, creds: S3Credentials) -> bytes:
    """The object's bytes, path-style addressed (works for AWS, MinIO and Ceph alike)."""
    path = "/" + quote(bucket, safe="") + "/" + quote(key, safe="/~")
    base = httpx.URL(creds.endpoint_url)
    host = base.host if base.port is None else f"{base.host}:{base.port}"
    headers = sign_get(creds, host, base.path.rstrip("/") + path, datetime.now(UTC), {})
    url = str(base.copy_with(path=base.path.rstrip("/") + path))
    return fetch(url, max_bytes, headers)


def fetch(url: str, max_bytes: int, headers: Mapping[str, str] | None = None) -> bytes:
    """GET a URL, refusing bodies over `max_bytes`; errors name the status, never the content."""
    try:
        with httpx.stream("GET", url, headers=dict(headers or {}), timeout=60.0) as response:
            if response.status_code != 200:
                raise DatasetUnavailable(f"dataset download failed with HTTP {response.status_code}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise DatasetUnavailable(f"dataset is larger than {max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as e:
        raise DatasetUnavailable(f"dataset download failed: {type(e).__name__}") from None
