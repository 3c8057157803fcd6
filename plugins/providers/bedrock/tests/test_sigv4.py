"""The SigV4 signer against the wire reference's test vector and botocore's
own signer, and the fake's check of signatures (also botocore's)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from portway_bedrock.sigv4 import Credentials, sign, signature_of
from portway_bedrock.testing import check_signature

from portway.testing import RecordedRequest

# provider-wire-facts.md §5, "Test vector" (generated there with botocore 1.43).
VECTOR_BODY = b'{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":64}}'
VECTOR_PATH = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
VECTOR_HOST = "bedrock-runtime.us-east-1.amazonaws.com"
VECTOR_SIGNATURE = "05ee567ba64fef8e45e7f3fb378768ceef17d6e6d957bdfee4e82aeea2cbb9f6"
EXAMPLE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
NEW_YEAR = datetime(2025, 1, 1, tzinfo=UTC)


def vector_headers() -> dict[str, str]:
    return sign("POST", VECTOR_PATH, {"content-type": "application/json", "host": VECTOR_HOST}, VECTOR_BODY,
                credentials=EXAMPLE, region="us-east-1", service="bedrock", when=NEW_YEAR)


def test_the_wire_reference_vector() -> None:
    headers = vector_headers()
    assert headers["x-amz-date"] == "20250101T000000Z"
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, "
        f"SignedHeaders=content-type;host;x-amz-date, Signature={VECTOR_SIGNATURE}")
    assert signature_of(headers["authorization"]) == VECTOR_SIGNATURE


def botocore_signature(method: str, url: str, headers: dict[str, str], body: bytes, credentials: Credentials,
                       amz_date: str, region: str) -> str:
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(BotoCredentials(credentials.access_key, credentials.secret_key, credentials.session_token),
                       "bedrock", region)
    return signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)


CASES = [
    ("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream", "", None, b'{"messages":[]}'),
    ("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.amazon.nova-pro-v1%3A0/converse",
     "", "FwoGZXIvYXdzEJr//////////session+token/=", b'{"a":1}'),
    ("/prefix/model/cohere.embed-english-v3/invoke", "b=2&a=1", None, b""),
    ("/model/meta.llama3-1-8b-instruct-v1%3A0/converse", "", None, '{"text":"naïve ☃"}'.encode()),
]


@pytest.mark.parametrize(("path", "query", "token", "body"), CASES)
def test_agrees_with_botocore(path: str, query: str, token: str | None, body: bytes) -> None:
    credentials = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", token)
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    headers = {"Content-Type": "application/json", "host": "127.0.0.1:8443", "accept": "application/json",
               "x-custom": "  spaced   value  "}
    added = sign("POST", path, headers, body, credentials=credentials, region="eu-west-3", service="bedrock",
                 when=when, query=query)
    assert ("x-amz-security-token" in added) == (token is not None)
    signed = {**headers, **{k: v for k, v in added.items() if k != "authorization"}}
    expected = botocore_signature("POST", f"https://127.0.0.1:8443{path}" + (f"?{query}" if query else ""),
                                  signed, body, credentials, added["x-amz-date"], "eu-west-3")
    assert signature_of(added["authorization"]) == expected
    names = added["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert names == sorted(name.lower() for name in signed)


def vector_request(body: bytes = VECTOR_BODY, path: str = VECTOR_PATH) -> RecordedRequest:
    headers = {"content-type": "application/json", "host": VECTOR_HOST, **vector_headers()}
    return RecordedRequest("POST", path.replace("%3A", ":"), "", headers, body, raw_path=path)


def test_the_fake_checks_the_vector_as_the_service_would() -> None:
    known = {"AKIDEXAMPLE": EXAMPLE.secret_key}
    assert check_signature(vector_request(), known, "us-east-1", now=NEW_YEAR) is None
    tampered = check_signature(vector_request(body=VECTOR_BODY.replace(b"64", b"65")), known, "us-east-1",
                               now=NEW_YEAR)
    assert tampered is not None and tampered[0] == "InvalidSignatureException"
    # The path as it came on the wire counts: the same request sent with ':' is another request.
    decoded = check_signature(vector_request(path=VECTOR_PATH.replace("%3A", ":")), known, "us-east-1", now=NEW_YEAR)
    assert decoded is not None and "does not match" in decoded[1]
    wrong_region = check_signature(vector_request(), known, "us-west-2", now=NEW_YEAR)
    assert wrong_region is not None and "scoped" in wrong_region[1]
    stale = check_signature(vector_request(), known, "us-east-1")
    assert stale is not None and "expired" in stale[1]
    unknown = check_signature(vector_request(), {"AKIDOTHER": "x"}, "us-east-1", now=NEW_YEAR)
    assert unknown is not None and unknown[0] == "UnrecognizedClientException"
