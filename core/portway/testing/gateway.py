"""A real Portway gateway on a socket, built from a config dict and any
plugins you hand it (registered exactly like installed ones)."""

from __future__ import annotations

from typing import Any

from portway import config as config_module
from portway.app import create_app
from portway.gateway import Gateway
from portway.serving import protocol_class
from portway.testing.servers import ThreadedServer


class GatewayServer:
    def __init__(
        self,
        config: dict[str, Any] | config_module.Config | None = None,
        *,
        plugins: list[tuple[str, Any]] | None = None,
        auto_providers: bool = False,
        environ: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(config, config_module.Config):
            config = config_module.parse(config or {}, "<test config>", environ)
        self.gateway = Gateway(config, extra_plugins=plugins, auto_providers=auto_providers, environ=environ)
        self.app = create_app(self.gateway)
        # Served as `portway serve` serves it, with the config's header limit.
        self._server = ThreadedServer(self.app, http=protocol_class(config.server.max_header_bytes))

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def base_url(self) -> str:
        """What an OpenAI SDK client takes as ``base_url``."""
        return self._server.url + "/v1"

    def openai_client(self, api_key: str = "portway-test", **options: Any) -> Any:
        import openai

        return openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, **options)

    def anthropic_client(self, api_key: str = "portway-test", **options: Any) -> Any:
        import anthropic

        return anthropic.Anthropic(base_url=self.url, api_key=api_key, max_retries=0, **options)

    def start(self) -> GatewayServer:
        self._server.start()
        return self

    def stop(self, wait: bool = True) -> None:
        self._server.stop(wait)

    def join(self) -> None:
        """Wait for a ``stop(wait=False)`` to finish."""
        self._server.join()

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
