"""Translation of botocore answers into the project's error types (pure, no network)."""

from __future__ import annotations

import botocore.exceptions
import pytest
from pydantic import SecretStr

from failover import s3
from failover.core import errors, secrets


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": "m"},
                                            "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize("code, status, kind", [
    ("NoSuchKey", 404, s3.ObjectNotFound), ("404", 404, s3.ObjectNotFound), ("NoSuchBucket", 404, s3.BucketNotFound),
    ("AccessDenied", 403, s3.AccessDenied), ("InvalidAccessKeyId", 403, s3.AccessDenied),
    ("SlowDown", 503, errors.TemporaryError), ("InternalError", 500, errors.TemporaryError),
    ("Whatever", 502, errors.TemporaryError), ("InvalidArgument", 400, errors.PermanentError),
])
def test_client_errors_are_translated(code: str, status: int, kind: type[errors.FailoverError]) -> None:
    ours = s3.translate_exception(_client_error(code, status), "GET x")
    assert type(ours) is kind


def test_location_registers_its_secret_and_describes_without_it() -> None:
    loc = s3.S3Location(endpoint="http://127.0.0.1:1/", bucket="b", prefix="/p/",
                        access_key=SecretStr("AKIAEXAMPLE"), secret_key=SecretStr("very-secret-value"))
    assert "very-secret-value" in secrets.known()
    assert loc.describe() == "http://127.0.0.1:1/b/p"
    assert "very-secret-value" not in repr(loc)
