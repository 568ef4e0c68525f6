"""SigV4 signing, checked against AWS's published example for GET Object."""

from __future__ import annotations

from datetime import UTC, datetime

from dpkube.engine.s3 import S3Credentials, sign_get


def test_signature_matches_aws_documentation_example() -> None:
    creds = S3Credentials(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "us-east-1",
        "https://examplebucket.s3.amazonaws.com",
    )
    headers = sign_get(
        creds,
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        datetime(2013, 5, 24, tzinfo=UTC),
        {"Range": "bytes=0-9"},
    )
    assert headers["authorization"].endswith(
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_credentials_default_to_us_east_1_and_aws_endpoint() -> None:
    creds = S3Credentials.from_env({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    assert creds.region == "us-east-1"
    assert creds.endpoint_url == "https://s3.us-east-1.amazonaws.com"
