"""The configuration file: YAML + pydantic, ``${VAR}`` interpolation, and
errors that always name the file and the dotted key.

Core keys are checked by :func:`portway.config.load`; provider-specific keys
and plugin sections are checked when the gateway is built (each provider
type validates its entry with its own ``config_model``), so those cases go
through :func:`portway.app.gateway_from_config_path`, exactly as
``portway serve`` and ``portway config check`` do.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from portway import config as config_module
from portway import configcheck
from portway.app import gateway_from_config_path
from portway.config import ConfigError
from portway.errors import PortwayError
from portway.hooks import HOOK_NAMES

#: The provider types installed here, as the config check lists them (each adapter package adds one).
INSTALLED = ", ".join(sorted(configcheck.Catalog.installed([]).provider_types))


def write(tmp_path: Path, text: str, name: str = "portway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        config_module.load(path, environ=environ if environ is not None else {})
    return str(info.value)


def gateway_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        gateway_from_config_path(str(path))
    return str(info.value)


# -- valid files ----------------------------------------------------------------


def test_minimal_config_is_valid(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          m: {type: mock}
        models:
          fast: {target: {provider: m, model: echo}}
    """)
    config = config_module.load(path, environ={})
    assert config.source == str(path)
    assert config.server.host == "127.0.0.1" and config.server.port == 8787 and config.server.workers == 1
    assert config.auth.master_key is None
    assert [(t.provider, t.model) for t in config.models["fast"].targets] == [("m", "echo")]

    gateway = gateway_from_config_path(str(path))
    assert set(gateway.providers) == {"m"} and gateway.unavailable == {}
    route = gateway.resolve("fast")
    targets, policy = route.targets, route.policy
    assert [t.name for t in targets] == ["m/echo"] and policy.retry.attempts == 1  # no retry unless configured
    assert not policy.timeout.is_set  # and only the provider's own timeouts
    assert gateway.resolve("m/anything").targets[0].name == "m/anything"


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    config = config_module.load(write(tmp_path, ""), environ={})
    assert config.providers == {} and config.models == {} and config.server.port == 8787


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- just\n- a list\n")
    message = load_error(path)
    assert str(path) in message and "mapping" in message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    message = load_error(path)
    assert str(path) in message and "cannot read" in message


# -- which file -----------------------------------------------------------------------------


@pytest.mark.parametrize(("files", "cli", "env", "path", "reason"), [
    ([], None, {}, None, "no --config, no $PORTWAY_CONFIG, no ./portway.yaml"),
    (["portway.yaml"], None, {}, "portway.yaml", "found in the working directory"),
    (["portway.yml"], None, {}, "portway.yml", "found in the working directory"),
    (["portway.yaml", "portway.yml"], None, {}, "portway.yaml",
     "found in the working directory; ./portway.yml is ignored"),
    (["portway.yaml"], None, {"PORTWAY_CONFIG": "/etc/pw.yaml"}, "/etc/pw.yaml", "from $PORTWAY_CONFIG"),
    (["portway.yaml"], None, {"PORTWAY_CONFIG": ""}, "portway.yaml", "found in the working directory"),
    (["portway.yaml"], "cli.yaml", {"PORTWAY_CONFIG": "/etc/pw.yaml"}, "cli.yaml", "from --config"),
    ([], None, {"PORTWAY_CONFIG": "missing.yaml"}, "missing.yaml", "from $PORTWAY_CONFIG"),  # no fall-through
])
def test_discover_order(tmp_path: Path, files: list[str], cli: str | None, env: dict[str, str], path: str | None,
                        reason: str) -> None:
    for name in files:
        write(tmp_path, "providers: {}\n", name)
    assert config_module.discover(cli, env, tmp_path) == config_module.Choice(path, reason)


def test_a_directory_named_portway_yaml_is_not_a_config(tmp_path: Path) -> None:
    (tmp_path / "portway.yaml").mkdir()
    assert config_module.discover(None, {}, tmp_path).path is None


# -- ${VAR} interpolation -----------------------------------------------------------


def test_env_interpolation_with_values_and_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, """
        server:
          port: ${PW_PORT}
          host: ${PW_HOST:-127.0.0.1}
        auth:
          master_key: "sk-${PW_TEAM}-${PW_SUFFIX:-xyz}"
        providers:
          m:
            type: mock
            headers: {x-team: "${PW_TEAM}", x-empty: "${PW_EMPTY:-}"}
            models: ["${PW_MODEL:-echo}", fixed]
    """)
    config = config_module.load(path, environ={"PW_PORT": "9123", "PW_TEAM": "blue"})
    assert config.server.port == 9123  # the string from the environment is validated as an int
    assert config.server.host == "127.0.0.1"
    assert config.auth.master_key is not None and config.auth.master_key.get_secret_value() == "sk-blue-xyz"
    assert config.providers["m"]["headers"] == {"x-team": "blue", "x-empty": ""}
    assert config.providers["m"]["models"] == ["echo", "fixed"]


def test_env_value_wins_over_default_and_is_not_reinterpolated(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          m: {type: mock, base_url: "${PW_URL:-http://127.0.0.1:1}"}
    """)
    config = config_module.load(path, environ={"PW_URL": "${OTHER}"})
    assert config.providers["m"]["base_url"] == "${OTHER}"


def test_env_interpolation_uses_the_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW_TEST_KEY", "sk-from-env")
    path = write(tmp_path, """
        auth: {master_key: "${PW_TEST_KEY}"}
        providers: {m: {type: mock}}
    """)
    gateway = gateway_from_config_path(str(path))
    assert gateway.master_key == "sk-from-env"


def test_empty_variable_takes_the_default_as_in_the_shell(tmp_path: Path) -> None:
    path = write(tmp_path, """
        server: {host: "${PW_HOST:-127.0.0.1}"}
        providers:
          m: {type: mock, headers: {x-team: "${PW_TEAM}", x-tier: "${PW_TIER:-gold}"}}
    """)
    config = config_module.load(path, environ={"PW_HOST": "", "PW_TEAM": "", "PW_TIER": ""})
    assert config.server.host == "127.0.0.1"
    assert config.providers["m"]["headers"] == {"x-team": "", "x-tier": "gold"}  # no default: empty it is


def test_double_dollar_writes_a_literal(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          m:
            type: mock
            headers: {x-a: "$${HOME}", x-b: "cost: $$5, ${PW_X}", x-c: "$${PW_X:-d} and ${PW_X}", x-d: "$$${PW_X}"}
    """)
    config = config_module.load(path, environ={"HOME": "/root", "PW_X": "x"})
    assert config.providers["m"]["headers"] == {"x-a": "${HOME}", "x-b": "cost: $$5, x", "x-c": "${PW_X:-d} and x",
                                                "x-d": "$${PW_X}"}


def test_a_dollar_brace_that_is_not_a_variable_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          m: {type: mock, base_url: "${PW_URL", headers: {x-a: "${PW_A-b}", x-b: "${PW_B:-${PW_C}}"}}
    """)
    with pytest.raises(ConfigError) as info:
        config_module.load(path, environ={"PW_URL": "u", "PW_A": "a", "PW_C": "c"})
    hint = "'${' starts neither ${VAR} nor ${VAR:-default} (write $${ for a literal ${)"
    assert info.value.problems == [
        f"{path}: providers.m.base_url: {hint}",
        f"{path}: providers.m.headers.x-a: {hint}",
        f"{path}: providers.m.headers.x-b: {hint}",
    ]


def test_unset_variables_are_all_reported_and_not_also_as_bad_values(tmp_path: Path) -> None:
    path = write(tmp_path, """
        server: {port: "${PW_PORT}", workers: "${PW_WORKERS}"}
        routing: {retry: {attempts: many}}
    """)
    with pytest.raises(ConfigError) as info:
        config_module.load(path, environ={})
    assert info.value.problems == [
        f"{path}: server.port: environment variable PW_PORT is not set",
        f"{path}: server.workers: environment variable PW_WORKERS is not set",
        f"{path}: routing.retry.attempts: Input should be a valid integer, unable to parse string as an integer",
    ]


def test_secrets_may_stay_unset_when_the_caller_does_not_need_them(tmp_path: Path) -> None:
    path = write(tmp_path, """
        auth: {master_key: "${PW_KEY}"}
        providers:
          oai: {type: openai, api_key: "${PW_OAI}", headers: {authorization: "Bearer ${PW_TOKEN}"}}
    """)
    assert load_error(path) == "\n".join([
        f"{path}: auth.master_key: environment variable PW_KEY is not set",
        f"{path}: providers.oai.api_key: environment variable PW_OAI is not set",
        f"{path}: providers.oai.headers.authorization: environment variable PW_TOKEN is not set",
    ])
    config = config_module.load(path, environ={}, secrets=False)
    assert config.providers["oai"]["api_key"] == "${PW_OAI}"  # the text as written stands in
    assert config.providers["oai"]["headers"] == {"authorization": "Bearer ${PW_TOKEN}"}


def test_unset_env_var_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          oai:
            type: openai
            api_key: ${PW_DEFINITELY_UNSET_KEY}
    """)
    message = load_error(path, environ={})
    assert str(path) in message
    assert "providers.oai.api_key" in message
    assert "PW_DEFINITELY_UNSET_KEY" in message


def test_unset_env_var_in_a_list_names_the_index(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          m: {type: mock, models: [echo, "${PW_UNSET_MODEL}"]}
    """)
    message = load_error(path, environ={})
    assert str(path) in message and "providers.m.models.1" in message and "PW_UNSET_MODEL" in message


# -- bad values -----------------------------------------------------------------------


def test_bad_type_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
        server:
          port: "abc"
    """)
    message = load_error(path)
    assert str(path) in message
    assert "server.port" in message


def test_out_of_range_value_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 70000}\nrouting: {retry: {attempts: 0}}\n")
    message = load_error(path)
    assert "server.port" in message and "routing.retry.attempts" in message  # every error, not only the first


def test_logging_keys(tmp_path: Path) -> None:
    defaults = config_module.load(write(tmp_path, "", "empty.yaml"), environ={}).server
    assert (defaults.access_log, defaults.log_format) == (True, "text")
    path = write(tmp_path, "server: {access_log: maybe, log_format: xml, log_fromat: json}\n")
    with pytest.raises(ConfigError) as info:
        config_module.load(path, environ={})
    assert info.value.problems == [
        f"{path}: server.access_log: Input should be a valid boolean, unable to interpret input",
        f"{path}: server.log_format: Input should be 'text' or 'json'",
        f"{path}: server.log_fromat: Extra inputs are not permitted",
    ]


def test_unknown_key_in_a_core_section(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {prot: 8080}\n")
    message = load_error(path)
    assert str(path) in message and "server.prot" in message


def test_alias_pointing_at_undefined_provider(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          m: {type: mock}
        models:
          fast: {target: {provider: ghost, model: echo}}
    """)
    message = load_error(path)
    assert str(path) in message
    assert "models.fast" in message and ".provider" in message
    assert "ghost" in message


def test_alias_needs_exactly_one_of_target_and_targets(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers: {m: {type: mock}}
        models:
          both:
            target: {provider: m, model: echo}
            targets: [{provider: m, model: echo}]
    """)
    message = load_error(path)
    assert "models.both" in message and "target" in message


def test_provider_without_type(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          oai: {api_key: sk-test}
    """)
    message = load_error(path)
    assert str(path) in message
    assert "providers.oai" in message and "type" in message


def test_provider_name_cannot_contain_slash_or_be_empty(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          "a/b": {type: mock}
          "": {type: mock}
    """)
    assert load_error(path) == (f"{path}: providers.a/b: a provider name cannot contain '/'\n"
                                f"{path}: providers.: a provider name cannot be empty")


@pytest.mark.parametrize("value", ["", " ", "\t \n"])
def test_empty_master_key_is_an_error(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, 'auth: {master_key: "${PW_MASTER_KEY}"}\n')
    assert load_error(path, {"PW_MASTER_KEY": value}) == (
        f"{path}: auth.master_key: is empty; set it to a secret, or remove the key to run without one "
        "(allowed only on a loopback address)")
    written = write(tmp_path, 'auth: {master_key: ""}\n', "written.yaml")
    assert "auth.master_key: is empty" in load_error(written)


def test_master_key_with_surrounding_whitespace_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, 'auth: {master_key: "${PW_MASTER_KEY}"}\n')
    assert load_error(path, {"PW_MASTER_KEY": "sk-abc\n"}) == (
        f"{path}: auth.master_key: starts or ends with whitespace, which no HTTP client can send "
        "(header values are trimmed)")


def test_misspelt_hook_in_plugins_order(tmp_path: Path) -> None:
    path = write(tmp_path, "plugins: {order: {pre_reqest: [a], select_provider: [b], bogus: [c]}}\n")
    hooks = ", ".join(HOOK_NAMES)  # every hook, in hookspecs order
    with pytest.raises(ConfigError) as info:
        config_module.load(path, environ={})
    assert info.value.problems == [
        f"{path}: plugins.order.pre_reqest: no hook named 'pre_reqest' (did you mean 'pre_request'?); "
        f"the hooks are: {hooks}",
        f"{path}: plugins.order.bogus: no hook named 'bogus'; the hooks are: {hooks}",
    ]


# -- provider-specific keys: the provider type's config_model ---------------------------


def test_provider_specific_keys_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          m: {type: mock, latency_ms: 5, chunk_delay_ms: 1, embedding_dimensions: 4}
          oai: {type: openai, api_key: sk-test, organization: org-1, base_url: "http://127.0.0.1:9/v1"}
    """)
    gateway = gateway_from_config_path(str(path))
    assert gateway.providers["m"].config.latency_ms == 5  # type: ignore[attr-defined]
    assert gateway.providers["oai"].config.organization == "org-1"  # type: ignore[attr-defined]


def test_provider_specific_bad_type_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          m: {type: mock, latency_ms: "slow"}
    """)
    config_module.load(path, environ={})  # the core schema does not know mock's keys...
    message = gateway_error(path)  # ...the mock provider's config_model does
    assert str(path) in message
    assert "providers.m.latency_ms" in message


def test_provider_specific_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          m: {type: mock, latency: 5}
    """)
    message = gateway_error(path)
    assert str(path) in message and "providers.m.latency" in message


def test_keys_of_another_provider_type_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          m: {type: mock, organization: org-1}
    """)
    assert "providers.m.organization" in gateway_error(path)


def test_common_provider_key_bad_value(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          oai: {type: openai, api_key: sk-test, timeout: 0}
    """)
    message = gateway_error(path)
    assert str(path) in message and "providers.oai.timeout" in message


def test_provider_type_not_installed_is_not_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          gone: {type: nosuchprovider, whatever: 1}
          m: {type: mock}
        models:
          fast: {target: {provider: gone, model: x}}
    """)
    gateway = gateway_from_config_path(str(path))
    assert set(gateway.providers) == {"m"}
    assert "is not installed" in gateway.unavailable["gone"]
    with pytest.raises(PortwayError) as info:
        gateway.resolve("gone/x")
    assert info.value.status == 400 and "is not installed" in info.value.message
    with pytest.raises(PortwayError) as info:
        gateway.resolve("fast")
    assert info.value.status == 400 and "is not installed" in info.value.message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Core keys, provider types, provider keys and plugin sections: one report."""
    path = write(tmp_path, """
        server: {port: 70000}
        providers:
          "a/b": {type: mock}
          m: {type: mock, latency_ms: slow, latency: 1}
          t: {type: mokc}
          n: {api_key: x}
          o: {type: openai, api_key: "${PW_UNSET_OAI}", timeout: 0}
        models:
          fast: {targets: [{provider: m, model: echo}, {provider: ghost, model: x}]}
        rate_limit: {rpm: 10}
    """)
    config, problems = configcheck.check(path, environ={}, strict=True)
    assert config is None
    assert problems == [f"{path}: {problem}" for problem in [
        "providers.o.api_key: environment variable PW_UNSET_OAI is not set",
        "server.port: Input should be less than or equal to 65535",
        "providers.a/b: a provider name cannot contain '/'",
        "providers.n: needs a 'type' (e.g. openai, anthropic, mock)",
        "models.fast.targets.1.provider: no provider named 'ghost' (defined: a/b, m, n, o, t)",
        "providers.m.latency_ms: Input should be a valid number, unable to parse string as a number",
        "providers.m.latency: Extra inputs are not permitted",
        f"providers.t.type: unknown provider type 'mokc' (did you mean 'mock'?); installed: {INSTALLED}",
        "providers.o.timeout: Input should be greater than 0",
        "rate_limit: unknown section (no installed plugin declares it)",
    ]]
    far = write(tmp_path, "providers: {m: {type: zzz}}\n", "far.yaml")
    assert configcheck.check(far, environ={}, strict=True)[1] == [
        f"{far}: providers.m.type: provider type 'zzz' is not installed (pip install portway-zzz); "
        f"installed: {INSTALLED}"]
    # Not strict (serve, models): a provider type that is not installed is left to the gateway's warning.
    lenient = [p for p in problems if "mokc" not in p]
    assert configcheck.check(path, environ={}, strict=False)[1] == lenient
    with pytest.raises(ConfigError) as info:
        gateway_from_config_path(str(path))  # never built from a file with problems; says all of them
    assert info.value.problems == lenient


# -- sections and syntax ------------------------------------------------------------------


def test_unknown_top_level_section(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers: {m: {type: mock}}
        rate_limits: {rpm: 10}
    """)
    message = gateway_error(path)
    assert str(path) in message
    assert "rate_limits" in message and "unknown section" in message


def test_yaml_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "providers:\n  m: {type: mock\nmodels: [\n", name="broken.yaml")
    assert load_error(path) == (f"{path}: not valid YAML: line 3, column 7: expected ',' or '}}', but got ':' "
                                "(while parsing a flow mapping at line 2, column 6)")


def test_a_character_yaml_refuses_is_named_with_its_place(tmp_path: Path) -> None:
    path = write(tmp_path, 'providers:\n  m: {type: mock, api_key: "sk-\x01secret"}\n')
    message = load_error(path)
    assert message == f"{path}: not valid YAML: line 2, column 32: character #x0001 is not allowed"
    assert "secret" not in message  # PyYAML's own message would quote the line


def test_text_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "portway.yaml"
    path.write_bytes(b"providers: {m: {type: mock}}\n\xff\n")
    assert load_error(path) == f"{path}: not UTF-8 text (byte 29: invalid start byte)"


def test_a_structure_that_contains_itself(tmp_path: Path) -> None:
    path = write(tmp_path, "providers: {m: &m {type: mock, headers: {h: *m}}}\n")
    assert load_error(path) == f"{path}: providers.m.headers.h: an alias refers to a node that contains it"
    shared = write(tmp_path, "base: &b {type: mock}\nproviders: {m: *b, n: *b}\n", "shared.yaml")
    assert config_module.read(shared)[0]["providers"] == {"m": {"type": "mock"}, "n": {"type": "mock"}}


def test_duplicate_keys_are_errors_naming_key_and_lines(tmp_path: Path) -> None:
    path = write(tmp_path, """
        server: {port: 1}
        providers:
          m: {type: mock}
          o: {type: openai, api_key: a, api_key: b}
          m: {type: mock, latency_ms: 5}
        models:
          fast: {targets: [{provider: m, model: x, model: y}]}
        server: {port: 2}
    """)
    with pytest.raises(ConfigError) as info:
        config_module.load(path, environ={})
    assert info.value.problems == [  # in the order of the file
        f"{path}: providers.o.api_key: duplicate key 'api_key' on line 5 (first on line 5)",
        f"{path}: providers.m: duplicate key 'm' on line 6 (first on line 4)",
        f"{path}: models.fast.targets.0.model: duplicate key 'model' on line 8 (first on line 8)",
        f"{path}: server: duplicate key 'server' on line 9 (first on line 2)",
    ]


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, """
        base: &base {type: mock, latency_ms: 1}
        providers:
          a: {<<: *base, latency_ms: 2}
          b: *base
    """)
    data, problems = config_module.read(path)
    assert problems == []
    assert data["providers"] == {"a": {"type": "mock", "latency_ms": 2}, "b": {"type": "mock", "latency_ms": 1}}


def test_keys_are_read_as_written_and_values_keep_yaml_booleans(tmp_path: Path) -> None:
    """YAML 1.1 (PyYAML) reads a plain on/off/yes/no as a boolean: as a key
    that is never meant (a guardrail's ``on:``, an alias named ``no``)."""
    path = write(tmp_path, """
        models:
          no: {target: {provider: m, model: x}}
          On: {target: {provider: m, model: y}}
        check: {on: [input], off: 1, yes: 2, true: 3, "no": 4}
        flags: [on, off, yes, no, true, "on"]
    """)
    data, problems = config_module.read(path)
    assert problems == []
    assert list(data["models"]) == ["no", "On"]
    assert data["check"] == {"on": ["input"], "off": 1, "yes": 2, True: 3, "no": 4}
    assert data["flags"] == [True, False, True, False, True, "on"]


def test_embedded_defaults_serve_mock() -> None:
    gateway = gateway_from_config_path(None)
    assert "mock" in gateway.providers
    assert gateway.resolve("mock/echo").targets[0].name == "mock/echo"


def test_embedded_defaults_say_so() -> None:
    """The serve banner and error messages name the config by its source."""
    assert gateway_from_config_path(None).config.source == "<embedded defaults>"


def test_source_is_not_a_key_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "source: elsewhere.yaml\n")
    # (The request log declares `store`, which is close enough to be suggested.)
    assert gateway_error(path) == (f"{path}: source: unknown section (no installed plugin declares it) "
                                   "(did you mean 'store'?)")


def test_error_quotes_the_alias_form_the_file_used() -> None:
    from portway.config import ConfigError, parse

    with pytest.raises(ConfigError) as single:
        parse({"providers": {"p": {"type": "mock"}}, "models": {"fast": {"target": {"provider": "x", "model": "m"}}}},
              "f.yaml")
    assert str(single.value) == "f.yaml: models.fast.target.provider: no provider named 'x' (defined: p)"
    with pytest.raises(ConfigError) as listed:
        parse({"providers": {"p": {"type": "mock"}},
               "models": {"fast": {"targets": [{"provider": "p", "model": "m"}, {"provider": "x", "model": "m"}]}}},
              "f.yaml")
    assert str(listed.value).startswith("f.yaml: models.fast.targets.1.provider: no provider named 'x'")


# -- retry: durations, defaults, the keys it replaced ------------------------------------------------


def test_retry_durations_and_an_aliass_retry_over_the_routing_default(tmp_path: Path) -> None:
    from portway.gateway import Gateway

    path = write(tmp_path, """
        providers: {m: {type: mock}}
        routing:
          retry: {attempts: 2, on_status: [429, 503], backoff: {initial: 200ms, max: 2m}}
        models:
          a: {target: {provider: m, model: echo}, retry: {attempts: 4}}
          b: {target: {provider: m, model: echo}, retry: {backoff: {initial: 1.5, max: 5s}}}
          c: {target: {provider: m, model: echo}}
    """)
    config = config_module.load(path, environ={})
    retry = config.routing.retry
    assert (retry.attempts, retry.on_status, retry.backoff.initial, retry.backoff.max) == (2, [429, 503], 0.2, 120.0)
    gateway = Gateway(config)
    a, b, c = (gateway.resolve(name).policy.retry for name in ("a", "b", "c"))
    assert (a.attempts, a.on_status, a.backoff.initial) == (4, [429, 503], 0.2)
    assert (b.attempts, b.backoff.initial, b.backoff.max) == (2, 1.5, 5.0)
    assert c == retry and gateway.resolve("m/echo").policy.retry == retry
    defaults = config_module.load(write(tmp_path, "providers: {m: {type: mock}}\n", "d.yaml"), environ={}).routing.retry
    assert (defaults.attempts, defaults.on_status, defaults.backoff.initial, defaults.backoff.max) == (
        1, [408, 429, 500, 502, 503, 504, 529], 0.2, 5.0)


@pytest.mark.parametrize(("text", "words"), [
    ("routing: {retry: {backoff: {initial: soon}}}", "routing.retry.backoff.initial: 'soon' is not a duration"),
    ("routing: {retry: {backoff: {max: 5w}}}", "routing.retry.backoff.max: '5w' is not a duration"),
    ("routing: {retry: {backoff: {initial: -1}}}", "routing.retry.backoff.initial"),
    ("routing: {retries: 2}", "retries is gone: write retry: {attempts: N}"),
    ("routing: {retry_backoff: 0.5}", "retry_backoff is gone"),
    ("providers: {m: {type: mock}}\nmodels: {a: {target: {provider: m, model: x}, retries: 1}}",
     "models.a: retries is gone"),
])
def test_retry_mistakes_are_named(tmp_path: Path, text: str, words: str) -> None:
    assert words in load_error(write(tmp_path, text + "\n"))
