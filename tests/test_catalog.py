"""The model catalog (portway.catalog): prices, windows and capabilities,
the cost of every response (OpenAI, Anthropic and Gemini usage shapes,
streamed and not), the context-window pre-check and its fallback, the
models API, and count_tokens, through a running gateway with the openai
and anthropic SDKs against fakes of each provider's wire format."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from genai_prices import Usage, calc_price

from portway import hookimpl
from portway.builtins.catalog import snapshot, to_price
from portway.catalog import Catalog, ModelInfo, Price, cost_of, format_cost
from portway.config import ConfigError
from portway.testing import FakeUpstream
from portway.testing.anthropic_api import COUNT_BASE, AnthropicAPI
from portway.testing.gateway import GatewayServer
from portway.testing.script import say
from portway.testing.upstream import sse_reply

KEY = "sk-catalog-test-0123456789"


class Finished:
    """A plugin that keeps every finished request's context."""

    def __init__(self) -> None:
        self.contexts: list[Any] = []

    @hookimpl
    def request_finished(self, ctx: Any) -> None:
        self.contexts.append(ctx)


def openai_completion(usage: dict[str, Any], model: str = "m") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": usage}


OPENAI_USAGE = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
                "prompt_tokens_details": {"cached_tokens": 400}}
# 600 fresh x $2 + 400 cached x $0.5 + 200 out x $8, per million
OPENAI_COST = "0.003"


@pytest.fixture
def upstream():
    with FakeUpstream() as up:
        yield up


def oai(upstream: FakeUpstream, name: str = "oai") -> dict[str, Any]:
    return {name: {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"}}


# -- cost, by hand ------------------------------------------------------------------------------


def test_cost_of_prices_each_part_at_its_own_rate() -> None:
    price = Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75, reasoning=20.0)
    usage = {"prompt_tokens": 7100, "completion_tokens": 300,
             "prompt_tokens_details": {"cached_tokens": 5000, "cache_write_tokens": 2000},
             "completion_tokens_details": {"reasoning_tokens": 100}}
    # 100 fresh x 3 + 5000 x 0.3 + 2000 x 3.75 + 200 x 15 + 100 x 20
    assert cost_of(price, usage) == pytest.approx((300 + 1500 + 7500 + 3000 + 2000) / 1e6)
    # no rate of its own: cached and written input at the input rate, reasoning at the output rate
    assert cost_of(Price(input=3.0, output=15.0), usage) == pytest.approx((7100 * 3 + 300 * 15) / 1e6)


def test_cost_of_uses_the_tier_the_prompt_reaches() -> None:
    price = Price(input=1.25, output=10.0, tiers=((200_000, Price(input=2.5, output=15.0)),))
    assert cost_of(price, {"prompt_tokens": 200_000, "completion_tokens": 10}) == pytest.approx(
        (200_000 * 1.25 + 100) / 1e6)
    assert cost_of(price, {"prompt_tokens": 200_001, "completion_tokens": 10}) == pytest.approx(
        (200_001 * 2.5 + 150) / 1e6)


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": "10", "completion_tokens": 1},
    {"prompt_tokens": -1, "completion_tokens": 1},
    {"prompt_tokens": 10, "completion_tokens": 1.5},
    {"prompt_tokens": 10, "completion_tokens": True},
    {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 11}},
    {"prompt_tokens": 10, "completion_tokens": 1, "completion_tokens_details": {"reasoning_tokens": 2}},
    {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": ["x"]},
])
def test_an_upstream_usage_that_is_not_plain_counts_has_no_cost(usage: dict[str, Any]) -> None:
    assert cost_of(Price(input=1.0, output=1.0), usage) is None


def test_a_part_used_without_a_price_has_no_cost_rather_than_zero() -> None:
    assert cost_of(Price(input=1.0), {"prompt_tokens": 10, "completion_tokens": 1}) is None
    assert cost_of(Price(input=1.0), {"prompt_tokens": 10, "completion_tokens": 0}) == pytest.approx(1e-5)


def test_format_cost_is_a_plain_decimal() -> None:
    assert format_cost(0.0000045) == "0.0000045"
    assert format_cost(12.0) == "12.0"
    assert format_cost(0.0) == "0.0"


# -- genai-prices as the source -------------------------------------------------------------------


@pytest.mark.parametrize(("provider_id", "model", "usage"), [
    ("openai", "gpt-4o-mini", {"prompt_tokens": 12_000, "completion_tokens": 900,
                               "prompt_tokens_details": {"cached_tokens": 5_000}}),
    ("anthropic", "claude-sonnet-4-5", {"prompt_tokens": 9_000, "completion_tokens": 500,
                                        "prompt_tokens_details": {"cached_tokens": 6_000, "cache_write_tokens": 2_000}}),
    ("anthropic", "claude-sonnet-4-5", {"prompt_tokens": 250_000, "completion_tokens": 500}),  # the long-context tier
    ("google", "gemini-2.5-pro", {"prompt_tokens": 300_000, "completion_tokens": 4_000,
                                  "prompt_tokens_details": {"cached_tokens": 100_000}}),
    ("google", "gemini-2.5-flash", {"prompt_tokens": 1_000, "completion_tokens": 2_000}),
])
def test_prices_from_genai_prices_cost_what_genai_prices_itself_computes(provider_id: str, model: str,
                                                                       usage: dict[str, Any]) -> None:
    _, found = snapshot().find_provider_model(model, None, provider_id, None)
    from datetime import UTC, datetime
    price = to_price(found.get_prices(datetime.now(UTC)))
    assert price is not None
    details = usage.get("prompt_tokens_details") or {}
    theirs = calc_price(Usage(input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"],
                              cache_read_tokens=details.get("cached_tokens", 0),
                              cache_write_tokens=details.get("cache_write_tokens", 0)),
                        model, provider_id=provider_id).total_price
    ours = cost_of(price, usage)
    assert ours is not None and Decimal(str(ours)).quantize(Decimal("1e-9")) == theirs.quantize(Decimal("1e-9"))


def test_a_provider_is_looked_up_under_its_catalog_id_only(upstream: FakeUpstream) -> None:
    server = GatewayServer({"providers": {
        **oai(upstream),
        "gem": {"type": "gemini", "api_key": KEY, "base_url": upstream.url},
        "local": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"},
    }})
    catalog = server.gateway.catalog
    mini = catalog.lookup(server.gateway.providers["oai"], "gpt-4o-mini")
    assert mini is not None and mini.price is not None and mini.price.input > 0 and "genai-prices" in mini.sources
    assert mini.context_window == 128_000 and mini.max_output_tokens == 16_384  # the openai plugin's limits table
    flash = catalog.lookup(server.gateway.providers["gem"], "gemini-2.5-flash")
    assert flash is not None and flash.price is not None  # gemini's models are genai-prices' "google"
    assert catalog.lookup(server.gateway.providers["oai"], "my-finetune-that-nobody-prices") is None


# -- the cost of each response --------------------------------------------------------------------


def test_the_cost_header_and_the_request_record_for_openai_usage(upstream: FakeUpstream) -> None:
    upstream.json("/v1/chat/completions", openai_completion(OPENAI_USAGE))
    finished = Finished()
    config = {"providers": oai(upstream),
              "catalog": {"oai/house-model": {"price": {"input": 2.0, "output": 8.0, "cache_read": 0.5}}}}
    with GatewayServer(config, plugins=[("finished", finished)]) as server:
        raw = server.openai_client().chat.completions.with_raw_response.create(
            model="oai/house-model", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-portway-cost"] == OPENAI_COST
    assert finished.contexts[-1].cost == pytest.approx(0.003)


def test_an_override_changes_the_cost(upstream: FakeUpstream) -> None:
    upstream.json("/v1/chat/completions", openai_completion(OPENAI_USAGE))
    config = {"providers": oai(upstream), "catalog": {"oai/gpt-4o-mini": {"price": {"input": 20.0, "output": 80.0}}}}
    with GatewayServer(config) as server:
        raw = server.openai_client().chat.completions.with_raw_response.create(
            model="oai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    # no cache_read price given: the override's input rate for the cached part too (the override wins
    # field by field; genai-prices' own cache price for gpt-4o-mini still fills what it does not say)
    catalogued = snapshot().find_provider_model("gpt-4o-mini", None, "openai", None)[1]
    from datetime import UTC, datetime
    cache_read = float(catalogued.get_prices(datetime.now(UTC)).cache_read_mtok)
    assert float(raw.headers["x-portway-cost"]) == pytest.approx((600 * 20 + 400 * cache_read + 200 * 80) / 1e6)


def test_an_uncatalogued_model_has_no_cost_not_zero(upstream: FakeUpstream, caplog: pytest.LogCaptureFixture) -> None:
    upstream.json("/v1/chat/completions", openai_completion(OPENAI_USAGE))
    finished = Finished()
    with caplog.at_level("INFO", logger="portway.access"), GatewayServer(
            {"providers": oai(upstream)}, plugins=[("finished", finished)]) as server:
        raw = server.openai_client().chat.completions.with_raw_response.create(
            model="oai/nobody-prices-this", messages=[{"role": "user", "content": "hi"}])
    assert "x-portway-cost" not in raw.headers
    assert finished.contexts[-1].cost is None
    assert any("cost=unknown" in record.getMessage() for record in caplog.records)


def anthropic_message(usage: dict[str, Any]) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": usage}


ANTHROPIC_USAGE = {"input_tokens": 100, "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 5000,
                   "output_tokens": 300}
# 100 x $3 + 2000 written x $3.75 + 5000 read x $0.3 + 300 out x $15, per million
ANTHROPIC_COST = "0.0138"
ANTHROPIC_CATALOG = {"ant/claude-x": {"price": {"input": 3.0, "output": 15.0, "cache_read": 0.3,
                                                "cache_write": 3.75}}}


def test_anthropic_cache_reads_and_writes_are_priced_on_both_apis(upstream: FakeUpstream) -> None:
    upstream.json("/v1/messages", anthropic_message(ANTHROPIC_USAGE))
    config = {"providers": {"ant": {"type": "anthropic", "api_key": KEY, "base_url": upstream.url}},
              "catalog": ANTHROPIC_CATALOG}
    with GatewayServer(config) as server:
        via_openai = server.openai_client().chat.completions.with_raw_response.create(
            model="ant/claude-x", messages=[{"role": "user", "content": "hi"}])
        via_messages = server.anthropic_client().messages.with_raw_response.create(
            model="ant/claude-x", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    assert via_openai.headers["x-portway-cost"] == ANTHROPIC_COST
    assert via_messages.headers["x-portway-cost"] == ANTHROPIC_COST  # the pass-through is priced too


def test_a_streams_cost_goes_to_the_request_record(upstream: FakeUpstream) -> None:
    events = [
        ("message_start", {"type": "message_start", "message": {**anthropic_message(
            {**ANTHROPIC_USAGE, "output_tokens": 1}), "content": [], "stop_reason": None}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "ok"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 300}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    upstream.add("/v1/messages", sse_reply(events))
    finished = Finished()
    config = {"providers": {"ant": {"type": "anthropic", "api_key": KEY, "base_url": upstream.url}},
              "catalog": ANTHROPIC_CATALOG}
    with GatewayServer(config, plugins=[("finished", finished)]) as server:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in server.openai_client().chat.completions.create(
            model="ant/claude-x", messages=[{"role": "user", "content": "hi"}], stream=True) if chunk.choices)
        with server.anthropic_client().messages.stream(model="ant/claude-x", max_tokens=100,
                                                       messages=[{"role": "user", "content": "hi"}]) as stream:
            native_text = stream.get_final_text()
    assert text == native_text == "ok"
    assert [format_cost(ctx.cost) for ctx in finished.contexts] == [ANTHROPIC_COST, ANTHROPIC_COST]


def test_gemini_thoughts_are_billed_as_output_and_cached_content_as_cache_reads(upstream: FakeUpstream) -> None:
    answer = {"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP",
                              "index": 0}],
              "usageMetadata": {"promptTokenCount": 1000, "cachedContentTokenCount": 400, "candidatesTokenCount": 100,
                                "thoughtsTokenCount": 50, "totalTokenCount": 1150},
              "modelVersion": "gemini-x"}
    upstream.json("/v1beta/models/gemini-x:generateContent", answer)
    config = {"providers": {"gem": {"type": "gemini", "api_key": KEY, "base_url": upstream.url}},
              "catalog": {"gem/gemini-x": {"price": {"input": 1.25, "output": 10.0, "cache_read": 0.125}}}}
    with GatewayServer(config) as server:
        raw = server.openai_client().chat.completions.with_raw_response.create(
            model="gem/gemini-x", messages=[{"role": "user", "content": "hi"}])
    # 600 fresh x 1.25 + 400 cached x 0.125 + (100 + 50 thoughts) x 10, per million
    assert raw.headers["x-portway-cost"] == "0.0023"


# -- the context-window pre-check -----------------------------------------------------------------

LONG = "word " * 2000  # 10,000 bytes: at least 1,250 tokens by the lower bound


def test_a_request_that_cannot_fit_is_refused_before_any_upstream_call(upstream: FakeUpstream) -> None:
    upstream.json("/v1/chat/completions", openai_completion(OPENAI_USAGE))
    config = {"providers": {**oai(upstream), "ant": {"type": "anthropic", "api_key": KEY, "base_url": upstream.url}},
              "catalog": {"oai/small": {"context_window": 1000}, "ant/small": {"context_window": 1000}}}
    with GatewayServer(config) as server:
        with pytest.raises(openai.BadRequestError) as caught:
            server.openai_client().chat.completions.create(model="oai/small",
                                                           messages=[{"role": "user", "content": LONG}])
        with pytest.raises(anthropic.BadRequestError) as native:
            server.anthropic_client().messages.create(model="ant/small", max_tokens=10,
                                                      messages=[{"role": "user", "content": LONG}])
        fits = server.openai_client().chat.completions.create(
            model="oai/small", max_tokens=100, messages=[{"role": "user", "content": "word " * 100}])
    error = caught.value.body
    assert caught.value.code == "context_length_exceeded" and error["param"] == "messages"
    assert "oai/small" in error["message"] and "1000 tokens" in error["message"] and "1250" in error["message"]
    assert native.value.body["error"]["type"] == "invalid_request_error"
    assert "context window" in native.value.body["error"]["message"]
    assert fits.choices[0].message.content == "ok"
    assert len(upstream.requests) == 1  # only the request that fits went out


def test_a_request_a_hook_made_longer_is_measured_as_it_goes_out(upstream: FakeUpstream) -> None:
    class Expand:  # a prompt template, say: the client sent a few bytes, the upstream would get many
        @hookimpl
        def pre_request(self, ctx: Any) -> None:
            ctx.body["messages"][-1]["content"] = LONG

    config = {"providers": oai(upstream), "catalog": {"oai/small": {"context_window": 1000}}}
    with GatewayServer(config, plugins=[("expand", Expand())]) as server, pytest.raises(openai.BadRequestError) as caught:
        server.openai_client().chat.completions.create(model="oai/small", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "context_length_exceeded"
    assert upstream.requests == []


def test_requested_output_counts_against_the_window(upstream: FakeUpstream) -> None:
    config = {"providers": oai(upstream), "catalog": {"oai/small": {"context_window": 1000}}}
    with GatewayServer(config) as server, pytest.raises(openai.BadRequestError) as caught:
        server.openai_client().chat.completions.create(model="oai/small", max_completion_tokens=990,
                                                       messages=[{"role": "user", "content": "word " * 100}])
    assert caught.value.code == "context_length_exceeded" and "990 requested" in caught.value.body["message"]
    assert upstream.requests == []


def test_an_alias_falls_back_to_a_target_with_a_bigger_window(upstream: FakeUpstream) -> None:
    upstream.json("/v1/chat/completions", openai_completion(OPENAI_USAGE, model="large"))
    config = {"providers": {**oai(upstream, "small"), **oai(upstream, "large")},
              "models": {"chat": {"targets": [{"provider": "small", "model": "m-8k"},
                                              {"provider": "large", "model": "m-128k"}]}},
              "catalog": {"small/m-8k": {"context_window": 1000}, "large/m-128k": {"context_window": 128000}}}
    with GatewayServer(config) as server:
        client = server.openai_client()
        long_one = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": LONG}])
        short_one = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}])
    assert (long_one.headers["x-portway-provider"], long_one.headers["x-portway-model"]) == ("large", "m-128k")
    assert (short_one.headers["x-portway-provider"], short_one.headers["x-portway-model"]) == ("small", "m-8k")
    assert [r.json()["model"] for r in upstream.requests] == ["m-128k", "m-8k"]


def test_a_catalog_entry_for_an_unknown_provider_is_a_config_error(upstream: FakeUpstream) -> None:
    with pytest.raises(ConfigError, match=r"catalog\.ghost/m: no provider named 'ghost' \(defined: oai\)"):
        GatewayServer({"providers": oai(upstream), "catalog": {"ghost/m": {"context_window": 10}}})
    with pytest.raises(ConfigError, match="keyed '<provider>/<model>'"):
        GatewayServer({"providers": oai(upstream), "catalog": {"m": {"context_window": 10}}})
    with pytest.raises(ConfigError, match="catalog.oai/m.price.input"):
        GatewayServer({"providers": oai(upstream), "catalog": {"oai/m": {"price": {"input": -1}}}})


# -- the models API -------------------------------------------------------------------------------


def test_models_list_and_retrieve_carry_what_the_catalog_knows(upstream: FakeUpstream) -> None:
    config = {"providers": {"oai": {**oai(upstream)["oai"], "models": ["gpt-4o-mini", "house"]}},
              "models": {"fast": {"target": {"provider": "oai", "model": "gpt-4o-mini"}}},
              "catalog": {"oai/house": {"context_window": 32000, "max_output_tokens": 4096,
                                        "price": {"input": 1.0, "output": 2.0, "cache_read": 0.1},
                                        "capabilities": ["tools", "vision"]}}}
    with GatewayServer(config) as server:
        client = server.openai_client()
        listed = {m.id: m.model_dump() for m in client.models.list()}
        house = client.models.retrieve("oai/house").model_dump()
        fast = client.models.retrieve("fast").model_dump()
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("oai-nope/x")
    assert set(listed) == {"fast", "oai/gpt-4o-mini", "oai/house"}
    assert house == listed["oai/house"]
    assert {k: house[k] for k in ("id", "owned_by", "context_window", "max_output_tokens", "pricing",
                                  "capabilities")} == {
        "id": "oai/house", "owned_by": "oai", "context_window": 32000, "max_output_tokens": 4096,
        "pricing": {"input": 1.0, "output": 2.0, "cache_read": 0.1}, "capabilities": ["tools", "vision"]}
    assert fast["owned_by"] == "portway" and fast["context_window"] == 128_000 and fast["pricing"]["input"] > 0
    assert fast == {**listed["fast"]}


# -- count_tokens -----------------------------------------------------------------------------------


def test_count_tokens_is_forwarded_to_anthropic_and_estimated_elsewhere(upstream: FakeUpstream) -> None:
    fake = AnthropicAPI([say("unused")], api_key=KEY).install(upstream)
    config = {"providers": {"ant": {"type": "anthropic", "api_key": KEY, "base_url": upstream.url},
                            "mock": {"type": "mock"}}}
    messages = [{"role": "user", "content": "hello " * 400}, {"role": "assistant", "content": "hi"},
                {"role": "user", "content": "again"}]
    with GatewayServer(config) as server:
        client = server.anthropic_client()
        counted = client.messages.with_raw_response.count_tokens(model="ant/claude-sonnet-4-5", messages=messages,
                                                                  system="Be brief.")
        estimated = client.messages.with_raw_response.count_tokens(model="mock/echo", messages=messages)
        with pytest.raises(anthropic.NotFoundError):
            client.messages.count_tokens(model="nope", messages=messages)
        with pytest.raises(anthropic.BadRequestError):
            client.messages.count_tokens(model="mock/echo", messages="not a list")  # type: ignore[arg-type]
    assert counted.parse().input_tokens == COUNT_BASE + 3
    assert counted.headers["x-portway-token-count"] == "provider"
    assert fake.counted == [{"model": "claude-sonnet-4-5", "messages": messages, "system": "Be brief."}]
    # 2,400 + 2 + 5 bytes of text / 4, plus 4 a message
    assert estimated.parse().input_tokens == 602 + 12
    assert estimated.headers["x-portway-token-count"] == "estimate"


def test_the_catalog_merges_its_layers_field_by_field() -> None:
    class Source:
        @hookimpl
        def catalog_entry(self, provider: Any, model: str) -> ModelInfo:
            return ModelInfo(context_window=1, max_output_tokens=2, price=Price(input=5.0, output=6.0),
                             sources=("source",))

    server = GatewayServer({"providers": {"m": {"type": "mock"}},
                            "catalog": {"m/x": {"context_window": 100, "price": {"output": 9.0}}}},
                           plugins=[("source", Source())])
    catalog: Catalog = server.gateway.catalog
    info = catalog.lookup(server.gateway.providers["m"], "x")
    assert info is not None
    assert (info.context_window, info.max_output_tokens) == (100, 2)
    assert info.price is not None and (info.price.input, info.price.output) == (5.0, 9.0)
    assert info.sources[:2] == ("config", "source")
    assert catalog.lookup(server.gateway.providers["m"], "x") is info  # kept, not asked again



# -- the estimate, exactly ------------------------------------------------------------------------


def test_the_estimate_counts_text_bytes_images_and_messages() -> None:
    from portway import tokens

    body = {"model": "m", "max_tokens": 99, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "é" * 10},  # 20 bytes of UTF-8
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 999}}]},
        {"role": "assistant", "content": "abcd" * 5, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "B" * 999}}]}],
        "system": "sys", "tools": [{"name": "tool", "description": "does"}]}
    size, images, messages = tokens.measure(body)
    # 20 + 20 + "f" + "{}" + "sys" + "tool" + "does" = 20 + 20 + 1 + 2 + 3 + 4 + 4; ids, roles, types and images not text
    assert (size, images, messages) == (54, 2, 3)
    assert tokens.estimate(body) == 14 + 2 * tokens.IMAGE_TOKENS + 3 * tokens.MESSAGE_TOKENS
    assert tokens.lower_bound(body) == 54 // 8
    assert tokens.measure({"messages": "not a list", "prompt": "abc"}) == (13, 0, 0)


@pytest.mark.parametrize(("body", "wanted"), [
    ({"max_completion_tokens": 7, "max_tokens": 9}, 7), ({"max_tokens": 9}, 9), ({"max_output_tokens": 5}, 5),
    ({"max_tokens": 0}, 0), ({"max_tokens": "9"}, 0), ({"max_tokens": True}, 0), ({}, 0),
])
def test_the_requested_output(body: dict[str, Any], wanted: int) -> None:
    from portway import tokens

    assert tokens.requested_output(body) == wanted


def test_a_fully_cached_prompt_is_priced_and_a_bad_reasoning_count_is_not() -> None:
    price = Price(input=3.0, output=15.0, cache_read=0.3)
    assert cost_of(price, {"prompt_tokens": 100, "completion_tokens": 0,
                           "prompt_tokens_details": {"cached_tokens": 100}}) == pytest.approx(30 / 1e6)
    assert cost_of(price, {"prompt_tokens": 100, "completion_tokens": 5,
                           "completion_tokens_details": {"reasoning_tokens": "2"}}) is None


def test_windows_from_the_providers_limits_table_and_capabilities_from_its_capability_table(
        upstream: FakeUpstream) -> None:
    server = GatewayServer({"providers": {
        "gem": {"type": "gemini", "api_key": KEY, "base_url": upstream.url},
        "groq": {"type": "groq", "api_key": KEY, "base_url": upstream.url + "/openai/v1"}}})
    catalog = server.gateway.catalog
    pro = catalog.lookup(server.gateway.providers["gem"], "gemini-2.5-pro")
    assert pro is not None and (pro.context_window, pro.max_output_tokens) == (1_048_576, 65_536)  # genai-prices has none
    assert "provider:gemini" in pro.sources
    llama = catalog.lookup(server.gateway.providers["groq"], "llama-3.1-8b-instant")
    assert llama is not None and llama.capabilities == frozenset(
        server.gateway.providers["groq"].model_capabilities("llama-3.1-8b-instant") or ())
    assert llama.capabilities


@pytest.mark.parametrize("answer", [{"input_tokens": "12"}, {"input_tokens": -1}, {"tokens": 12}, ["x"]])
def test_a_counting_api_that_answers_no_count_is_a_502_not_a_crash(upstream: FakeUpstream, answer: Any) -> None:
    upstream.json("/v1/messages/count_tokens", answer)
    config = {"providers": {"ant": {"type": "anthropic", "api_key": KEY, "base_url": upstream.url}}}
    with GatewayServer(config) as server, pytest.raises(anthropic.APIStatusError) as caught:
        server.anthropic_client().messages.count_tokens(model="ant/claude-sonnet-4-5",
                                                        messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502 and "no input_tokens count" in caught.value.message
