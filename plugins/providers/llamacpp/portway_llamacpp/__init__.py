"""llama.cpp provider: the OpenAI-compatible API of ``llama-server``.

llama-server parses OpenAI's Chat Completions in
``oaicompat_chat_params_parse`` (``tools/server/utils.hpp``); what differs
from OpenAI, and so what this adapter states as quirks:

- ``n`` other than 1 is an error ("Only one completion choice is allowed");
- ``tool_choice`` is read as a string ("auto", "none", "required"): a named
  function (an object) is silently read as "auto", so it is refused here
  rather than ignored;
- messages are rendered by the model's chat template (``--jinja``), whose
  roles are system, user, assistant and tool: a ``developer`` message is
  sent as ``system``.

A reasoning model's thinking comes back as ``reasoning_content`` (the
default ``--reasoning-format``), OpenAI-compatible clients' own field.  No key
is needed unless the server was started with ``--api-key``.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"


class LlamaCppProvider(OpenAICompatibleProvider):
    type = "llamacpp"
    #: llama-server listens on 127.0.0.1:8080 (tools/server/README.md, ``--port``).
    default_base_url = "http://127.0.0.1:8080/v1"
    #: A local server: no key unless ``--api-key`` was given (then set ``api_key``).
    env_key = None
    quirks = Quirks(max_n=1, tool_choice_named=False, developer_role=False)


@hookimpl
def register_providers(register: Any) -> None:
    register(LlamaCppProvider)
