"""Fakes of Vertex AI's side of the wire, for this plugin's tests:

* :class:`TokenEndpoint`, Google's OAuth2 token endpoint for service
  accounts: it checks the assertion as Google does (RS256 signature against
  the account's public key, ``kid``, ``iss``, ``scope``, ``aud`` = its own
  URL, at most an hour of life), counts exchanges, and issues tokens that
  expire on its :class:`Clock`;
* :class:`GeminiOnVertex`, the fake Gemini API of ``portway_gemini.testing``
  under Vertex's paths, accepting only a live token and requiring roles;
* :class:`VertexClaudeAPI`, the core's fake Anthropic API as Vertex serves
  it: ``:rawPredict`` / ``:streamRawPredict`` under the model's path, a
  bearer token instead of a key, ``anthropic_version`` in the body (required)
  and no ``model`` in it (refused);
* :func:`service_account_file`, a key file with a fresh RSA key.

Both model fakes are conformance-kit ``WireFake`` s; each installs its token
endpoint on the upstream with it when the test has not.

Sources: google-auth's ``service_account`` and ``_client`` (the grant and
the claims), anthropic-sdk-python's ``lib/vertex/_client.py`` (paths, body
changes), python-genai's ``_api_client.py`` (Vertex base URLs).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization as keys
from cryptography.hazmat.primitives.asymmetric import rsa

from portway import serialization
from portway.testing.anthropic_api import AnthropicAPI
from portway.testing.script import Step
from portway.testing.upstream import FakeUpstream, Gate, RecordedRequest, Reply, json_reply
from portway_gemini.testing import GeminiAPI
from portway_vertex.auth import ASSERTION_SECONDS, GRANT_TYPE, SCOPE

CLIENT_EMAIL = "portway-test@test-project.iam.gserviceaccount.com"
KEY_ID = "0123456789abcdef0123456789abcdef01234567"


class Clock:
    """A clock the test moves: ``clock()`` is ``clock.now``."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class ServiceAccountKey:
    path: Path
    private_key: rsa.RSAPrivateKey

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()


def service_account_file(directory: Path, token_uri: str, *, project_id: str | None = "test-project",
                         private_key: rsa.RSAPrivateKey | None = None) -> ServiceAccountKey:
    """A service-account key file (as the Cloud console downloads it) in
    ``directory``, naming ``token_uri``."""
    key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(keys.Encoding.PEM, keys.PrivateFormat.PKCS8, keys.NoEncryption()).decode()
    info: dict[str, Any] = {"type": "service_account", "private_key_id": KEY_ID, "private_key": pem,
                            "client_email": CLIENT_EMAIL, "client_id": "1234567890", "token_uri": token_uri,
                            "auth_uri": "https://accounts.google.com/o/oauth2/auth"}
    if project_id is not None:
        info["project_id"] = project_id
    path = directory / "service-account.json"
    path.write_bytes(serialization.dumps(info))
    return ServiceAccountKey(path, key)


class TokenEndpoint:
    """The fake token endpoint; see the module docstring.  ``lifetime``:
    the ``expires_in`` it grants; ``gate``: a :class:`Gate` each exchange
    waits at before answering (to hold a refresh in flight)."""

    def __init__(self, public_key: rsa.RSAPublicKey, *, lifetime: int = 3600, clock: Clock | None = None,
                 path: str = "/token") -> None:
        self.public_key = public_key
        self.lifetime = lifetime
        self.clock = clock or Clock()
        self.path = path
        self.url = ""
        self.exchanges = 0
        self.answered = 0
        self.refusals: list[str] = []
        self.issued: dict[str, float] = {}  # token -> when it expires, on self.clock
        self.gate: Gate | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def install(self, upstream: FakeUpstream) -> TokenEndpoint:
        self.url = upstream.url + self.path
        upstream.add(self.path, self._reply)
        return self

    def _reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.exchanges += 1
        problem = self._check(request)
        if problem is not None:
            self.refusals.append(problem)
            return json_reply({"error": "invalid_grant", "error_description": problem}, 400)
        token = f"ya29.fake-token-{next(self._ids)}-abcdefghijklmnop"
        self.issued[token] = self.clock() + self.lifetime
        body = serialization.dumps({"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"})
        chunks: list[bytes | Gate] = [body] if self.gate is None else [self.gate, body]
        return Reply(chunks=chunks, content_type="application/json")

    def _check(self, request: RecordedRequest) -> str | None:
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return "the request is not form-encoded"
        form = parse_qs(request.body.decode())
        if form.get("grant_type") != [GRANT_TYPE]:
            return "Invalid grant_type."
        assertion = (form.get("assertion") or [""])[0]
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, self.public_key, algorithms=["RS256"], audience=self.url,
                                options={"require": ["iss", "aud", "iat", "exp", "scope"]})
        except jwt.PyJWTError as exc:
            return f"Invalid JWT: {type(exc).__name__}: {exc}"
        if header.get("kid") != KEY_ID:
            return "Invalid JWT Signature: unknown key id."
        if claims["iss"] != CLIENT_EMAIL or claims["scope"] != SCOPE:
            return "Invalid JWT: wrong iss or scope."
        if claims["exp"] - claims["iat"] > ASSERTION_SECONDS:
            return "Invalid JWT: Token must be a short-lived token (60 minutes)."
        return None

    def valid(self, token: str) -> bool:
        expires = self.issued.get(token)
        return expires is not None and self.clock() < expires

    def authorize(self, request: RecordedRequest) -> tuple[int, str] | None:
        """Vertex's check of ``Authorization: Bearer <token>``."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self.valid(token.strip()):
            return 401, ("Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                         "cookie or other valid authentication credential.")
        return None


def vertex_prefix(project: str = "test-project", location: str = "us-central1", publisher: str = "google") -> str:
    return f"/v1/projects/{project}/locations/{location}/publishers/{publisher}/models"


class GeminiOnVertex(GeminiAPI):
    """The fake Gemini API under Vertex's paths, behind the token check of
    ``tokens`` (installed with it when it is not yet)."""

    def __init__(self, script: Sequence[Step], tokens: TokenEndpoint, *, models: Sequence[str] = ("test-model",),
                 project: str = "test-project", location: str = "us-central1") -> None:
        super().__init__(script, models=models, prefix=vertex_prefix(project, location), authorize=tokens.authorize,
                         require_roles=True)
        self.tokens = tokens

    def install(self, upstream: FakeUpstream) -> GeminiOnVertex:
        if not self.tokens.url:
            self.tokens.install(upstream)
        super().install(upstream)
        return self


class VertexClaudeAPI(AnthropicAPI):
    """The fake Anthropic API as Vertex serves Claude; see the module docstring."""

    def __init__(self, script: Sequence[Step], tokens: TokenEndpoint, *, models: Sequence[str] = ("claude-test",),
                 project: str = "test-project", location: str = "us-central1",
                 anthropic_version: str = "vertex-2023-10-16") -> None:
        super().__init__(script)
        self.tokens = tokens
        self.models = list(models)
        self.prefix = vertex_prefix(project, location, "anthropic")
        self.anthropic_version = anthropic_version
        self.bodies: list[dict[str, Any]] = []  # each accepted body as Vertex received it

    def install(self, upstream: FakeUpstream) -> VertexClaudeAPI:  # type: ignore[override]
        if not self.tokens.url:
            self.tokens.install(upstream)
        for model in self.models:
            for method in ("rawPredict", "streamRawPredict"):
                upstream.add(f"{self.prefix}/{model}:{method}", self)
        upstream.add(f"{self.prefix}/count-tokens:rawPredict", self._count_tokens)
        return self

    def _count_tokens(self, request: RecordedRequest) -> Reply:
        """``count-tokens:rawPredict``: the model in the body, with Vertex's ``anthropic_version``; then
        the Anthropic API's own count (:meth:`AnthropicAPI.count_tokens`)."""
        try:
            body = request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            if body.get("anthropic_version") != self.anthropic_version:
                return self._refuse(request, 400, "invalid_request_error",
                                    f"anthropic_version: must be {self.anthropic_version!r}")
            if body.get("model") not in self.models:
                return self._refuse(request, 404, "not_found_error", f"model: {body.get('model')!r} not found")
            body = {k: v for k, v in body.items() if k != "anthropic_version"}
            request = replace(request, body=serialization.dumps(body))
        return self.count_tokens(request)

    def _check_headers(self, request: RecordedRequest) -> tuple[int, str, str] | None:
        problem = self.tokens.authorize(request)
        return (problem[0], "authentication_error", problem[1]) if problem else None

    def __call__(self, request: RecordedRequest) -> Reply:
        model, _, method = request.path.rsplit("/", 1)[1].partition(":")
        try:
            body = request.json()
        except ValueError:
            return super().__call__(request)
        if isinstance(body, dict):
            if "model" in body:
                return self._refuse(request, 400, "invalid_request_error", "model: Extra inputs are not permitted")
            if body.get("anthropic_version") != self.anthropic_version:
                return self._refuse(request, 400, "invalid_request_error",
                                    f"anthropic_version: must be {self.anthropic_version!r}")
            if bool(body.get("stream")) != (method == "streamRawPredict"):
                return self._refuse(request, 400, "invalid_request_error",
                                    f"{method} takes stream={method == 'streamRawPredict'}")
            self.bodies.append(body)
            body = {"model": model, **{k: v for k, v in body.items() if k != "anthropic_version"}}
            request = replace(request, body=serialization.dumps(body))
        return super().__call__(request)


__all__ = ["Clock", "GeminiOnVertex", "ServiceAccountKey", "TokenEndpoint", "VertexClaudeAPI",
           "service_account_file", "vertex_prefix"]
