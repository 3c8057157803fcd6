"""portway.stores.responses: the owner check, the bounds, and the history
that ``previous_response_id`` replays."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portway.formats.responses import input_items, openai_response_to_responses, responses_request_to_openai
from portway.stores.responses import MemoryResponseStore, ResponseRecord, ResponseStore


class Clock:
    """A clock the test moves by hand (TTL tests never sleep)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(response_id: str, key_id: str | None = "key-a", previous: str | None = None,
           output: list[dict[str, Any]] | None = None, items: list[dict[str, Any]] | None = None) -> ResponseRecord:
    response = {"id": response_id, "object": "response", "previous_response_id": previous,
                "output": output if output is not None else [{"id": f"msg_out_{response_id}", "type": "message"}]}
    return ResponseRecord(response=response, input_items=items if items is not None else
                          [{"id": f"msg_in_{response_id}", "type": "message"}], key_id=key_id)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_stored_record_is_read_back_by_its_owner() -> None:
    store = MemoryResponseStore()
    stored = ResponseRecord(response={"id": "resp_1", "output": []}, input_items=[], key_id="key-a",
                            provider="oai", native=True)
    run(store.put(stored))
    got = run(store.get("resp_1", "key-a"))
    assert got is stored
    assert (got.id, got.provider, got.native, got.previous_response_id) == ("resp_1", "oai", True, None)
    assert run(store.get("resp_2", "key-a")) is None


@pytest.mark.parametrize(("owner", "reader"), [("key-a", "key-b"), ("key-a", None), (None, "key-a")])
def test_another_keys_record_is_not_found(owner: str | None, reader: str | None) -> None:
    store = MemoryResponseStore()
    run(store.put(record("resp_1", key_id=owner)))
    assert run(store.get("resp_1", reader)) is None
    assert run(store.delete("resp_1", reader)) is False
    assert run(store.history("resp_1", reader)) is None
    assert run(store.get("resp_1", owner)) is not None  # the failed delete left it alone


def test_a_gateway_without_keys_reads_its_own_records() -> None:
    store = MemoryResponseStore()
    run(store.put(record("resp_1", key_id=None)))
    assert run(store.get("resp_1", None)) is not None


def test_delete_removes_the_record_once() -> None:
    store = MemoryResponseStore()
    run(store.put(record("resp_1")))
    assert run(store.delete("resp_1", "key-a")) is True
    assert run(store.get("resp_1", "key-a")) is None
    assert run(store.delete("resp_1", "key-a")) is False
    assert len(store) == 0


def test_the_least_recently_used_record_goes_first() -> None:
    store = MemoryResponseStore(max_entries=2)
    run(store.put(record("resp_1")))
    run(store.put(record("resp_2")))
    assert run(store.get("resp_1", "key-a")) is not None  # now resp_2 is the least recently used
    run(store.put(record("resp_3")))
    assert len(store) == 2
    assert run(store.get("resp_2", "key-a")) is None
    assert run(store.get("resp_1", "key-a")) is not None
    assert run(store.get("resp_3", "key-a")) is not None


def test_storing_a_record_again_makes_it_the_most_recent() -> None:
    store = MemoryResponseStore(max_entries=2)
    run(store.put(record("resp_1")))
    run(store.put(record("resp_2")))
    run(store.put(record("resp_1")))
    run(store.put(record("resp_3")))
    assert run(store.get("resp_2", "key-a")) is None
    assert run(store.get("resp_1", "key-a")) is not None


def test_a_read_by_another_key_does_not_keep_a_record_alive() -> None:
    store = MemoryResponseStore(max_entries=2)
    run(store.put(record("resp_1")))
    run(store.put(record("resp_2")))
    assert run(store.get("resp_1", "key-b")) is None
    run(store.put(record("resp_3")))
    assert run(store.get("resp_1", "key-a")) is None


def test_the_default_bound_is_ten_thousand() -> None:
    store = MemoryResponseStore()
    assert (store.max_entries, store.ttl) == (10_000, None)

    async def fill() -> None:
        for i in range(10_001):
            await store.put(record(f"resp_{i}"))

    run(fill())
    assert len(store) == 10_000
    assert run(store.get("resp_0", "key-a")) is None


def test_a_record_expires_after_the_ttl() -> None:
    clock = Clock()
    store = MemoryResponseStore(ttl=60, clock=clock)
    run(store.put(record("resp_1")))
    clock.now += 59.5
    assert run(store.get("resp_1", "key-a")) is not None
    clock.now += 0.5
    assert run(store.get("resp_1", "key-a")) is None
    assert len(store) == 0  # dropped when found expired
    run(store.put(record("resp_2")))
    clock.now += 60
    assert run(store.delete("resp_2", "key-a")) is False


def test_storing_again_restarts_the_ttl() -> None:
    clock = Clock()
    store = MemoryResponseStore(ttl=60, clock=clock)
    run(store.put(record("resp_1")))
    clock.now += 50
    run(store.put(record("resp_1")))
    clock.now += 50
    assert run(store.get("resp_1", "key-a")) is not None


@pytest.mark.parametrize(("options", "message"), [({"max_entries": 0}, "max_entries must be at least 1"),
                                                  ({"ttl": 0}, "ttl must be positive")])
def test_bounds_must_make_sense(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MemoryResponseStore(**options)


def test_history_is_each_turns_input_then_output_oldest_first() -> None:
    store = MemoryResponseStore()
    run(store.put(record("resp_1")))
    run(store.put(record("resp_2", previous="resp_1")))
    run(store.put(record("resp_3", previous="resp_2")))
    assert [item["id"] for item in run(store.history("resp_3", "key-a"))] == [
        "msg_in_resp_1", "msg_out_resp_1", "msg_in_resp_2", "msg_out_resp_2", "msg_in_resp_3", "msg_out_resp_3"]
    assert [item["id"] for item in run(store.history("resp_1", "key-a"))] == ["msg_in_resp_1", "msg_out_resp_1"]


def test_a_chain_with_a_hole_or_another_owner_has_no_history() -> None:
    store = MemoryResponseStore()
    run(store.put(record("resp_2", previous="resp_1")))  # resp_1 was evicted or deleted
    assert run(store.history("resp_2", "key-a")) is None
    run(store.put(record("resp_1", key_id="key-b")))
    assert run(store.history("resp_2", "key-a")) is None
    assert run(store.history("resp_9", "key-a")) is None


def test_a_loop_in_stored_links_ends_the_walk() -> None:
    store = MemoryResponseStore()
    run(store.put(record("resp_1", previous="resp_2")))
    run(store.put(record("resp_2", previous="resp_1")))
    assert run(store.history("resp_2", "key-a")) is None


def test_reading_the_history_keeps_the_whole_chain_recent() -> None:
    store = MemoryResponseStore(max_entries=3)
    run(store.put(record("resp_1")))
    run(store.put(record("resp_2", previous="resp_1")))
    run(store.put(record("other")))
    assert run(store.history("resp_2", "key-a")) is not None  # touches resp_2 and resp_1
    run(store.put(record("resp_3", previous="resp_2")))
    assert run(store.get("other", "key-a")) is None
    assert run(store.history("resp_3", "key-a")) is not None


class DictStore(ResponseStore):
    """A second implementation: only get/put/delete; history comes with the protocol."""

    def __init__(self) -> None:
        self.records: dict[str, ResponseRecord] = {}

    async def get(self, response_id: str, key_id: str | None) -> ResponseRecord | None:
        found = self.records.get(response_id)
        return found if found is not None and found.key_id == key_id else None

    async def put(self, record: ResponseRecord) -> None:
        self.records[record.id] = record

    async def delete(self, response_id: str, key_id: str | None) -> bool:
        return self.records.pop(response_id, None) is not None


def test_any_store_gets_the_history_walk_from_the_protocol() -> None:
    store = DictStore()
    run(store.put(record("resp_1")))
    run(store.put(record("resp_2", previous="resp_1")))
    assert [item["id"] for item in run(store.history("resp_2", "key-a"))] == [
        "msg_in_resp_1", "msg_out_resp_1", "msg_in_resp_2", "msg_out_resp_2"]


def test_a_stored_turn_replays_as_the_next_requests_history() -> None:
    """The pieces together, as the endpoint will use them: store a turn
    that ended in a tool call, continue it with previous_response_id."""
    store = MemoryResponseStore()
    first = {"model": "m", "instructions": "first instructions", "input": "What is 6*7?",
             "tools": [{"type": "function", "name": "calc", "parameters": {"type": "object"}, "strict": None}]}
    completion = {"id": "c1", "object": "chat.completion", "created": 1, "model": "up", "choices": [{
        "index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "calc", "arguments": '{"e":"6*7"}'}}]}}]}
    response = openai_response_to_responses(completion, first, response_id="resp_1", created_at=1)
    run(store.put(ResponseRecord(response=response, input_items=input_items(first), key_id="key-a", provider="p")))

    second = {"model": "m", "instructions": "second instructions", "previous_response_id": "resp_1",
              "input": [{"type": "function_call_output", "call_id": "call_1", "output": "42"}]}
    history = run(store.history(second["previous_response_id"], "key-a"))
    assert responses_request_to_openai(second, history)["messages"] == [
        {"role": "system", "content": "second instructions"},  # instructions are not carried over
        {"role": "user", "content": "What is 6*7?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "calc", "arguments": '{"e":"6*7"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
