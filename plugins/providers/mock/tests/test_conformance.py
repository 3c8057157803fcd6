"""The mock provider passes the provider conformance kit (its scripted mode,
seen through ``portway.testing.mock_wire.MockWire``)."""

from portway.testing.conformance import FEATURES, Conformance, conformance_tests
from portway.testing.mock_wire import MockWire

CONFORMANCE = Conformance(
    provider="mock",
    # The mock ignores api_key; its errors are redacted of it all the same, which the error checks see.
    config=lambda url: {"type": "mock", "api_key": "mock-conformance-key-0123456789"},
    fake=MockWire,
    features=FEATURES | {"rerank"},
)

test_conformance = conformance_tests(CONFORMANCE)
