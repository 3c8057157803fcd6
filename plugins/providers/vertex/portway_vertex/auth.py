"""OAuth2 access tokens for Vertex AI, minted from a service-account key.

The flow is Google's "OAuth 2.0 for server to server applications" (what
google-auth's ``service_account.Credentials.refresh`` does): a JWT signed
with the account's RSA key (RS256; header ``kid`` = ``private_key_id``;
claims ``iss`` = ``client_email``, ``scope``, ``aud`` = ``token_uri``,
``iat``, ``exp`` at most an hour later) is exchanged at the key file's
``token_uri`` for ``{"access_token", "expires_in", "token_type"}``.

Signing uses PyJWT with ``cryptography`` (a millisecond of CPU once an hour,
so it runs inline); the exchange itself goes through the provider's async
pooled client, never a blocking call.  :class:`TokenCache` keeps the token
until shortly before it expires and lets one caller refresh it while the
others wait for that refresh.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portway import serialization
from portway.errors import PortwayError

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: An assertion's longest life (Google refuses more than an hour).
ASSERTION_SECONDS = 3600
#: How long before its expiry a token is replaced (google-auth refreshes 3 min 45 s early).
REFRESH_MARGIN = 300.0


@dataclass(frozen=True)
class ServiceAccount:
    """The parts of a service-account key file the flow needs.  The private
    key is parsed once, at start-up."""

    client_email: str
    private_key: Any
    private_key_id: str | None
    token_uri: str
    project_id: str | None

    @classmethod
    def load(cls, path: str) -> ServiceAccount:
        """Read and check a key file; a :class:`PortwayError` says what is wrong
        (never the key itself)."""
        try:
            info = serialization.loads(Path(path).read_bytes())
        except OSError as exc:
            raise PortwayError(f"cannot read the service-account file {path!r}: {exc.strerror}",
                               kind="bad_request") from None
        except serialization.JSONDecodeError:
            raise PortwayError(f"the service-account file {path!r} is not JSON", kind="bad_request") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise PortwayError(f"{path!r} is not a service-account key (its type is "
                               f"{info.get('type') if isinstance(info, dict) else None!r}); vertex needs one",
                               kind="bad_request")
        for field in ("client_email", "private_key"):
            if not isinstance(info.get(field), str) or not info[field]:
                raise PortwayError(f"the service-account file {path!r} has no {field}", kind="bad_request")
        from cryptography.hazmat.primitives import serialization as keys  # when a vertex provider is set up

        try:
            private_key = keys.load_pem_private_key(info["private_key"].encode(), password=None)
        except (ValueError, TypeError):
            raise PortwayError(f"the private_key of {path!r} is not a PEM RSA key", kind="bad_request") from None
        return cls(client_email=info["client_email"], private_key=private_key,
                   private_key_id=info.get("private_key_id") if isinstance(info.get("private_key_id"), str) else None,
                   token_uri=info.get("token_uri") or DEFAULT_TOKEN_URI,
                   project_id=info.get("project_id") if isinstance(info.get("project_id"), str) else None)

    def assertion(self, now: int) -> str:
        """The signed JWT to exchange, issued at ``now`` (Unix seconds)."""
        claims = {"iss": self.client_email, "scope": SCOPE, "aud": self.token_uri, "iat": now,
                  "exp": now + ASSERTION_SECONDS}
        headers = {"kid": self.private_key_id} if self.private_key_id else None
        import jwt  # with cryptography: ~100 ms, paid by a vertex provider's first token only

        return jwt.encode(claims, self.private_key, algorithm="RS256", headers=headers)


Mint = Callable[[], Awaitable[tuple[str, float]]]


class TokenCache:
    """One access token, shared by every request of a provider.

    :meth:`get` returns the current token until ``REFRESH_MARGIN`` before it
    expires (half its life for a short-lived one); then the first caller
    mints a new one with ``mint`` (returning the token and its lifetime in
    seconds) and every concurrent caller waits for that one result.  A
    failed mint raises to the callers waiting on it; the next call tries
    again.  Create it inside the event loop that uses it."""

    def __init__(self, mint: Mint, clock: Callable[[], float] = time.monotonic) -> None:
        self._mint = mint
        self.clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        #: The last tokens handed out: an error may still echo the previous one.
        self.recent: deque[str] = deque(maxlen=2)

    def _fresh(self) -> str | None:
        return self._token if self._token is not None and self.clock() < self._refresh_at else None

    async def get(self) -> str:
        token = self._fresh()
        if token is not None:
            return token
        async with self._lock:
            token = self._fresh()  # minted by the caller this one waited for
            if token is not None:
                return token
            token, lifetime = await self._mint()
            self._token = token
            self._refresh_at = self.clock() + lifetime - min(REFRESH_MARGIN, lifetime / 2)
            self.recent.append(token)
            return token

    def forget(self) -> None:
        """The upstream refused the token (revoked, or expired early): the next
        :meth:`get` mints a new one."""
        self._token = None
