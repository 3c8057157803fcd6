"""The core seams plugins build on: keys plugins declare on model aliases
(validated by the plugin's own type, unknown keys still errors), nested
aliases (a target naming another alias; cycles refused), headers a plugin
adds to the response, and the client's ``x-portway-metadata`` tags."""

from __future__ import annotations

from typing import Any, Literal

import openai
import pytest
from pydantic import BaseModel, ConfigDict

from portway import config as config_module
from portway import hookimpl
from portway.config import ConfigError
from portway.configcheck import Catalog, plugin_problems
from portway.gateway import Gateway
from portway.testing.gateway import GatewayServer

HI = [{"role": "user", "content": "hi"}]


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    loud: bool = False


class LabelPlugin:
    """Declares two alias keys, and echoes what the request's alias says of
    them (and the client's tags) in response headers."""

    @hookimpl
    def register_alias_keys(self, register: Any) -> None:
        register("label", Label)
        register("tone", Literal["calm", "brisk"])

    @hookimpl
    def pre_request(self, ctx: Any) -> None:
        label = ctx.alias_option("label")
        ctx.response_headers["x-test-label"] = "none" if label is None else label.text.upper() if label.loud \
            else label.text
        ctx.response_headers["x-test-tone"] = str(ctx.alias_option("tone"))
        ctx.response_headers["x-test-tags"] = ",".join(f"{k}={v}" for k, v in sorted(ctx.tags.items()))


PLUGINS = [("label", LabelPlugin())]


def models(**aliases: Any) -> dict[str, Any]:
    return {"providers": {"m": {"type": "mock"}}, "models": aliases}


def gateway(config: dict[str, Any]) -> Gateway:
    return Gateway(config_module.parse(config, "portway.yaml"), extra_plugins=PLUGINS)


def test_a_plugin_reads_its_validated_alias_keys_and_sets_response_headers() -> None:
    config = models(support={"target": {"provider": "m", "model": "echo"}, "label": {"text": "help", "loud": True},
                             "tone": "calm"},
                    plain={"target": {"provider": "m", "model": "echo"}})
    with GatewayServer(config, plugins=PLUGINS) as server:
        client = server.openai_client()
        got = [client.chat.completions.with_raw_response.create(model=model, messages=HI).headers
               for model in ("support", "plain", "m/echo")]
    assert [(h["x-test-label"], h["x-test-tone"]) for h in got] == [("HELP", "calm"), ("none", "None"),
                                                                     ("none", "None")]


@pytest.mark.parametrize(("entry", "problem"), [
    ({"tone": "loud"}, "models.a.tone: Input should be 'calm' or 'brisk'"),
    ({"label": {"text": "x", "colour": "red"}}, "models.a.label.colour: Extra inputs are not permitted"),
    ({"lable": {"text": "x"}}, "models.a.lable: unknown key (no installed plugin declares it) (did you mean 'label'?)"),
    ({"stratgy": "x"}, "models.a.stratgy: unknown key (no installed plugin declares it)"),
])
def test_alias_keys_are_validated_by_their_plugin_naming_file_and_key(entry: dict[str, Any], problem: str) -> None:
    config = models(a={"target": {"provider": "m", "model": "echo"}, **entry})
    with pytest.raises(ConfigError) as info:
        gateway(config)
    assert any(p.startswith(f"portway.yaml: {problem}") for p in info.value.problems), info.value.problems
    # `portway config check` says the same without starting anything.
    catalog = Catalog.installed([])
    catalog.alias_keys.update({"label": Label, "tone": Literal["calm", "brisk"]})
    assert any(p.startswith(f"portway.yaml: {problem}") for p in plugin_problems(config, "portway.yaml", catalog,
                                                                                  strict=False))


def test_a_key_declared_twice_is_an_error() -> None:
    class Again:
        @hookimpl
        def register_alias_keys(self, register: Any) -> None:
            register("tone", str)

    with pytest.raises(ConfigError, match="alias key 'tone' is declared twice"):
        Gateway(config_module.parse(models(), "x"), extra_plugins=[*PLUGINS, ("again", Again())])


def test_nested_aliases_expand_into_a_tree_of_groups() -> None:
    config = models(
        eu={"targets": [{"provider": "m", "model": "eu-1", "weight": 2}, {"provider": "m", "model": "eu-2"}],
            "tone": "brisk"},
        smart={"targets": [{"alias": "eu", "weight": 3}, {"provider": "m", "model": "us"}]})
    routed = gateway(config)
    route = routed.resolve("smart")
    assert [t.name for t in route.targets] == ["m/eu-1", "m/eu-2", "m/us"]
    inner, outer_target = route.group.members
    assert inner is routed.aliases["eu"].group and route.group.weights == (3.0, 1.0)
    assert inner.weights == (2.0, 1.0) and inner.options == {"tone": "brisk"}
    assert route.targets[0] is inner.members[0] and route.targets[2] is outer_target  # identity: who is whose


@pytest.mark.parametrize(("aliases", "problem"), [
    ({"a": {"targets": [{"alias": "b"}]}, "b": {"targets": [{"alias": "a"}]}},
     "models: aliases name each other in a cycle: a -> b -> a"),
    ({"a": {"target": {"alias": "a"}}}, "models: aliases name each other in a cycle: a -> a"),
    ({"a": {"target": {"alias": "nope"}}}, "models.a.target.alias: no alias named 'nope'"),
    ({"a": {"target": {"alias": "b", "provider": "m", "model": "x"}}, "b": {"target": {"provider": "m", "model": "y"}}},
     "models.a.target: Value error, a target names either an alias"),
    ({"a": {"target": {"provider": "m"}}}, "models.a.target: Value error, a target needs a 'provider' and a 'model'"),
])
def test_bad_nesting_is_a_config_error(aliases: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_module.parse(models(**aliases), "portway.yaml")
    assert any(problem.removeprefix("models: ").replace("Value error, ", "") in p for p in info.value.problems), \
        info.value.problems


def test_metadata_tags_reach_plugins_and_bad_ones_are_a_400() -> None:
    with GatewayServer(models(), plugins=PLUGINS) as server:
        client = server.openai_client()
        ok = client.chat.completions.with_raw_response.create(
            model="m/echo", messages=HI, extra_headers={"x-portway-metadata": '{"team": "search", "tier": "free"}'})
        assert ok.headers["x-test-tags"] == "team=search,tier=free"
        for bad, why in [("[1]", "must be a JSON object"), ('{"a": 1}', "the value of 'a' is not a string"),
                         ("{nope", "not valid JSON"), ('{"a": "' + "x" * 300 + '"}', "longer than 256"),
                         ("{" + ",".join(f'"k{i}": "v"' for i in range(17)) + "}", "17 keys; at most 16")]:
            with pytest.raises(openai.BadRequestError) as info:
                client.chat.completions.create(model="m/echo", messages=HI, extra_headers={"x-portway-metadata": bad})
            assert why in info.value.message and info.value.code == "invalid_metadata"
