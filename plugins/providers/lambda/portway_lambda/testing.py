"""A fake Lambda Inference API: OpenAI's Chat Completions wire format (Lambda
documents itself as a drop-in replacement) at ``/v1/chat/completions``,
a Lambda Cloud API key as ``Authorization: Bearer``, and no embeddings
endpoint (docs.lambda.ai/public-cloud/lambda-inference-api lists
``/chat/completions``, ``/completions`` and ``/models`` only).
"""

from __future__ import annotations

from collections.abc import Sequence

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import Step


class LambdaAPI(OpenAIChatAPI):
    def __init__(self, script: Sequence[Step], *, api_key: str | None = None) -> None:
        # The kit's embeddings route is moved out of the way: Lambda has none.
        super().__init__(script, api_key=api_key, embeddings_path="/v1/no-such-endpoint")


__all__ = ["LambdaAPI"]
