"""The watsonx provider passes the provider conformance kit, against the fake
watsonx.ai chat API and IAM token endpoint (``portway_watsonx.testing``)."""

from portway_watsonx.testing import IAM_PATH, WatsonxAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "ibm-conformance-apikey-0123456789"
PROJECT = "0d6f2a5c-7e1b-4c3a-9f00-123456789abc"

CONFORMANCE = Conformance(
    provider="watsonx",
    config=lambda url: {"type": "watsonx", "api_key": KEY, "base_url": url, "iam_url": url + IAM_PATH,
                        "project_id": PROJECT},
    fake=lambda script: WatsonxAPI(script, api_key=KEY, project_id=PROJECT),
    model="meta-llama/llama-3-2-11b-vision-instruct",
    # json_object only (no JSON schema).
    features=FEATURES - {"json_schema"},
    embeddings_model="ibm/slate-125m-english-rtrvr",
    params={
        "max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
        "max_completion_tokens": "as:max_tokens",
        "n": "mapped",
        "user": "dropped",
        "parallel_tool_calls": "dropped",
        "logprobs": "mapped",
        "logit_bias": "mapped",
        "frequency_penalty": "mapped",
        "presence_penalty": "mapped",
        "reasoning_effort": "mapped",
        "tool_choice": "mapped",  # sent as tool_choice_option (the fake reads it back)
    },
)

test_conformance = conformance_tests(CONFORMANCE)
