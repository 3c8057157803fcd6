"""The provider conformance kit (``portway.testing.conformance``, issue 9)
run on the bedrock adapter with the fake Bedrock Runtime API."""

from __future__ import annotations

from portway_bedrock.testing import BedrockAPI

from portway.testing import conformance

KEY_ID = "AKIDCONFORMANCE"
SECRET = "conformance-secret-key-0123456789"

BEDROCK = conformance.Conformance(
    provider="bedrock",
    config=lambda url: {"type": "bedrock", "region": "us-east-1", "base_url": url,
                        "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET},
    fake=lambda steps: BedrockAPI(steps, credentials={KEY_ID: SECRET}),
    # A Claude model: OpenAI clients take Converse, Anthropic clients the InvokeModel pass-through.
    model="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    features=frozenset({"chat", "system", "developer", "multi_turn", "tools", "stream_tools", "vision_base64", "json_schema",
                        "embeddings", "anthropic_ingress", "usage_in_stream"}),
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped",
            "seed": "dropped"},
    embeddings_model="amazon.titan-embed-text-v2:0",
)

test_conformance = conformance.conformance_tests(BEDROCK)
