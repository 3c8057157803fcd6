"""The lambda provider passes the conformance kit, against the fake Lambda Inference API."""

from portway_lambda.testing import LambdaAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "secret_lambda-conformance_0123456789"

CONFORMANCE = Conformance(
    provider="lambda",
    config=lambda url: {"type": "lambda", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: LambdaAPI(script, api_key=KEY),
    model="llama-4-maverick-17b-128e-instruct-fp8",
    features=FEATURES - {"embeddings"},
)

test_conformance = conformance_tests(CONFORMANCE)
