"""IBM Cloud IAM bearer tokens, exchanged from an API key.

watsonx.ai takes no API key itself: every request carries an IAM access
token, got by posting the key to IAM's token endpoint (IBM Cloud docs,
"Generating an IBM Cloud IAM token by using an API key"; the
``IamAuthenticator`` of IBM's SDKs)::

    POST https://iam.cloud.ibm.com/identity/token
    Content-Type: application/x-www-form-urlencoded
    grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey=<key>

    {"access_token": "...", "refresh_token": "not_supported", "token_type": "Bearer",
     "expires_in": 3600, "expiration": 1767229200, "scope": "ibm openid"}

:class:`IAMTokens` keeps the token until shortly before its ``expiration``
(a fifth of its life early, at most five minutes) and, when it is due, lets
exactly one caller exchange the key while every concurrent caller waits for
that exchange (an :class:`asyncio.Lock`, checked again once held).  The
exchange goes through the provider's pooled client for the IAM host.

Vertex AI's adapter keeps its OAuth token the same way (``portway_vertex.auth
.TokenCache``): the cache belongs in the core, with each adapter supplying
only its exchange.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

GRANT_TYPE = "urn:ibm:params:oauth:grant-type:apikey"
DEFAULT_IAM_URL = "https://iam.cloud.ibm.com/identity/token"
#: The longest a token is replaced before it expires.
MAX_MARGIN = 300.0


@dataclass(frozen=True)
class Token:
    value: str
    #: Unix time (seconds) at which IAM says it expires.
    expiration: float
    #: Its lifetime in seconds, as IAM gave it.
    lifetime: float

    def due(self, now: float) -> bool:
        """Whether it should be replaced by ``now``."""
        return now >= self.expiration - min(MAX_MARGIN, self.lifetime / 5)


Exchange = Callable[[], Awaitable[Token]]


class IAMTokens:
    """The IAM token of one provider, shared by all its requests.  A failed
    exchange raises to every caller that waited on it; the next call tries
    again.  Create it inside the event loop that uses it."""

    def __init__(self, exchange: Exchange, clock: Callable[[], float] = time.time) -> None:
        self._exchange = exchange
        self._clock = clock
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        #: The last tokens handed out, for redaction: an error may echo the one before.
        self.recent: deque[str] = deque(maxlen=2)

    def _current(self) -> str | None:
        token = self._token
        return token.value if token is not None and not token.due(self._clock()) else None

    async def get(self) -> str:
        value = self._current()
        if value is not None:
            return value
        async with self._lock:
            value = self._current()  # exchanged by the caller this one queued behind
            if value is not None:
                return value
            token = await self._exchange()
            self._token = token
            self.recent.append(token.value)
            return token.value

    def forget(self) -> None:
        """watsonx refused the token (revoked, expired early): the next
        :meth:`get` exchanges the key again."""
        self._token = None
