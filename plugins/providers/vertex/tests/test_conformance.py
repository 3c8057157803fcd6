"""The vertex provider passes the conformance kit twice: Gemini models and
Claude models, each behind the fake token endpoint."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from portway.testing.conformance import FEATURES, Conformance, conformance_tests
from portway_vertex.testing import GeminiOnVertex, TokenEndpoint, VertexClaudeAPI, service_account_file

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FILES = Path(tempfile.mkdtemp(prefix="portway-vertex-conformance-"))
atexit.register(shutil.rmtree, FILES, ignore_errors=True)


def config(url: str) -> dict[str, Any]:
    """The provider entry, with a key file naming the fake's token endpoint."""
    directory = Path(tempfile.mkdtemp(dir=FILES))
    account = service_account_file(directory, url + "/token", private_key=KEY)
    return {"type": "vertex", "credentials": str(account.path), "base_url": url}


GEMINI = Conformance(
    provider="vertex",
    config=config,
    fake=lambda script: GeminiOnVertex(script, TokenEndpoint(KEY.public_key()), models=["gemini-test"]),
    model="gemini-test",
    features=FEATURES - {"embeddings"},  # Vertex embeddings are not mapped (see the README)
)
CLAUDE = Conformance(
    provider="vertex",
    config=config,
    fake=lambda script: VertexClaudeAPI(script, TokenEndpoint(KEY.public_key()), models=["claude-test"]),
    model="claude-test",
    features=FEATURES - {"embeddings"},
    params={"seed": "dropped"},  # the Messages API has no seed (the anthropic plugin's rule)
)

test_gemini_conformance = conformance_tests(GEMINI)
test_claude_conformance = conformance_tests(CLAUDE)
