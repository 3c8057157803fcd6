"""AWS Signature Version 4 for one request, as botocore's ``SigV4Auth``
computes it for a non-S3 service (``auth.py``), checked against it and
against the test vector of the wire reference (``tests/test_sigv4.py``).

A dozen lines of ``hmac``/``hashlib`` rather than botocore itself: the
request path stays free of a large synchronous SDK, and the adapter signs
the exact bytes and path it sends.  What the signature covers:

* the canonical request: method, the path escaped once more (``%3A``
  becomes ``%253A``: non-S3 services sign the already-escaped path escaped
  again), the sorted query, every header given (names lower-cased, values
  trimmed), and the SHA-256 of the body;
* the scope ``YYYYMMDD/region/service/aws4_request``, with a key derived
  from the secret through the date, region and service.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def canonical_query(query: str) -> str:
    """The query's ``key=value`` pairs sorted (they are sent escaped already)."""
    if not query:
        return ""
    return "&".join(f"{key}={value}" for key, _, value in sorted(pair.partition("=") for pair in query.split("&")))


def sign(method: str, path: str, headers: Mapping[str, str], body: bytes, *, credentials: Credentials,
         region: str, service: str, when: datetime, query: str = "") -> dict[str, str]:
    """The headers that sign this request: ``x-amz-date``, the session
    token's ``x-amz-security-token`` if there is one, and ``authorization``.

    ``path`` is the path as sent, escapes included; ``headers`` are the
    headers to sign (``host`` among them) and are sent as they are; ``when``
    is a UTC time."""
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    added = {"x-amz-date": amz_date}
    if credentials.session_token:
        added["x-amz-security-token"] = credentials.session_token
    signed = {name.lower(): " ".join(value.split()) for name, value in {**headers, **added}.items()}
    names = sorted(signed)
    canonical = "\n".join([
        method.upper(),
        quote(path, safe="/~"),
        canonical_query(query),
        "".join(f"{name}:{signed[name]}\n" for name in names),
        ";".join(names),
        hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(f"AWS4{credentials.secret_key}".encode(), amz_date[:8])
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    added["authorization"] = (f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
                              f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return added


def signature_of(authorization: str) -> str:
    """The ``Signature=`` part of an ``authorization`` header made by :func:`sign`."""
    return authorization.rpartition("Signature=")[2]
