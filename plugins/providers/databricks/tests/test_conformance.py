"""The databricks provider passes the provider conformance kit against the
fake Databricks workspace (``portway_databricks.testing.DatabricksAPI``)."""

from portway_databricks.testing import DatabricksAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

TOKEN = "dapi-conformance-token-0123456789"

CONFORMANCE = Conformance(
    provider="databricks",
    config=lambda url: {"type": "databricks", "api_key": TOKEN, "host": url},
    fake=lambda script: DatabricksAPI(script, api_key=TOKEN),
    model="databricks-claude-sonnet-4",
    features=FEATURES | {"reasoning"},
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "max_completion_tokens": "as:max_tokens", "n": "mapped", "logprobs": "mapped", "tool_choice": "mapped",
            "reasoning_effort": "mapped"},
    embeddings_model="databricks-gte-large-en",
)

test_conformance = conformance_tests(CONFORMANCE)
