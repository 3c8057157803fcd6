"""The ``portway`` command."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from portway import __version__, configcheck, logs
from portway import config as config_module
from portway import plugins as plugin_loader
from portway.config import ConfigError
from portway.stores.sql import DATA_DIR_ENV

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

#: Where ``serve --workers N`` (N > 1) lets its workers' metrics meet: set to
#: a fresh directory, removed on exit, unless already set (see docs/metrics.md).
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

DISCOVERY_HELP = ("YAML config file (default: $PORTWAY_CONFIG, else ./portway.yaml or ./portway.yml, "
                  "else the embedded defaults: the mock provider)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _choose(cli_path: str | None) -> str | None:
    """The config file to use (None: the embedded defaults), said on stderr
    with the reason, so that stdout stays the command's output."""
    choice = config_module.discover(cli_path)
    print(f"portway: config: {choice.describe()}", file=sys.stderr)
    return choice.path


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from portway.app import SERVE_SETTINGS_ENV, gateway_for, served_app

    choice = config_module.discover(args.config)
    overrides: dict[str, Any] = {}
    if args.log_format:
        overrides["log_format"] = args.log_format
    if args.no_access_log:
        overrides["access_log"] = False  # the access-log plugin reads config.server.access_log
    if args.data_dir:
        # Read by the stores (portway.stores.sql.data_dir), in this process and in every worker.
        os.environ[DATA_DIR_ENV] = os.path.abspath(args.data_dir)
    config = configcheck.checked_config(choice.path, server=overrides)
    server = config.server
    host = args.host or server.host
    port = server.port if args.port is None else args.port
    workers = args.workers or server.workers
    insecure = args.insecure or server.insecure
    if config.auth.master_key is None and not _is_loopback(host):
        if not insecure:
            print(
                f"portway: refusing to listen on {host} without auth.master_key: anyone who can reach it could "
                "spend your provider credits. Set auth.master_key in the config, bind to 127.0.0.1, "
                "or pass --insecure.",
                file=sys.stderr,
            )
            return EXIT_USAGE

    # From here on everything is a log record, in the chosen format, written off the event loop.
    logs.configure(server.log_format, args.log_level)
    log = logging.getLogger("portway.serve")
    log.setLevel(logging.INFO)  # the start-up banner is shown at any --log-level
    if config.auth.master_key is None and not _is_loopback(host):
        log.warning("listening on %s with no API key required (--insecure)", host)
    gateway = gateway_for(config)  # warns about providers it cannot serve, and plugins that failed to load
    providers = ", ".join(f"{n} ({p.type})" for n, p in gateway.providers.items()) or "none"
    log.info("portway %s: http://%s:%s | providers: %s | config: %s", __version__, host, port, providers,
             choice.describe())
    if not gateway.providers:
        log.warning("no provider is configured: nothing can be served (add one under providers:)")
    # log_config=None: uvicorn's records go through the handler set up above; its access log stays off.
    # proxy_headers=False: nothing in Portway reads the client's address or scheme, so uvicorn's
    # X-Forwarded-* rewriting would be work on every request for nothing.
    options: dict[str, Any] = dict(host=host, port=port, log_level=args.log_level, access_log=False, log_config=None,
                                   proxy_headers=False,
                                   http="portway.serving:GatewayProtocol", loop="uvloop" if sys.platform != "win32" else "asyncio",
                                   timeout_graceful_shutdown=10)
    if workers > 1:
        # Each worker builds its own gateway from exactly what was checked here.
        os.environ[SERVE_SETTINGS_ENV] = json.dumps({
            "config": os.path.abspath(choice.path) if choice.path else None,
            "server": overrides,
            "log_level": args.log_level,
        })
        shared = None
        if not os.environ.get(METRICS_DIR_ENV):
            # Metrics are summed over the workers through files in one directory
            # (prometheus-client's multiprocess mode): a fresh one per run.
            shared = os.environ[METRICS_DIR_ENV] = tempfile.mkdtemp(prefix="portway-metrics-")
        try:
            uvicorn.run("portway.app:app_from_env", factory=True, workers=workers, **options)
        finally:
            if shared is not None:
                shutil.rmtree(shared, ignore_errors=True)
    else:
        uvicorn.run(served_app(gateway), **options)
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    pm = plugin_loader.new_manager()
    path = _choose(args.config)
    disable = configcheck.checked_config(path, secrets=False).plugins.disable
    infos = plugin_loader.load(pm, disable=disable)
    if args.json:
        print(json.dumps([info.as_dict() for info in infos], indent=2))
        return EXIT_OK
    rows = [("NAME", "KIND", "DISTRIBUTION", "VERSION", "STATUS", "HOOKS")]
    for info in infos:
        status = "error" if info.error else ("enabled" if info.enabled else "disabled")
        dist = info.distribution or "-"
        rows.append((info.name, info.kind, dist, info.version or ("builtin" if info.builtin else "-"), status,
                     ",".join(info.hooks) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5])
    for info in infos:
        if info.error:
            print(f"\n{info.name}: failed to load: {info.error}")
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    from portway.app import gateway_for

    path = _choose(args.file)
    # Strict: a provider type that is not available fails the check (serve would only warn).
    gateway = gateway_for(configcheck.checked_config(path, strict=True))
    if not gateway.providers:
        print("warning: no provider is configured: nothing can be served")
    print(f"{path or config_module.EMBEDDED}: ok ({len(gateway.providers)} providers, "
          f"{len(gateway.aliases)} model aliases)")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from portway.app import gateway_from_config_path

    # Listing models calls no provider: unset secrets are fine here.
    gateway = gateway_from_config_path(_choose(args.config), secrets=False)
    for model_id, owner in gateway.model_ids():
        info = gateway.model_info(model_id)
        known = describe_model(info) if info is not None else ""
        print(f"{model_id}\t{owner}" + (f"\t{known}" if known else ""))
    for _, _, pattern in gateway.wildcards:
        targets = ", ".join(t.name for t in gateway.aliases[pattern].targets) or "no usable target"
        print(f"{pattern}\tportway (wildcard: {targets})")
    return EXIT_OK


def describe_model(info: Any) -> str:
    """What the catalog knows of a model, for ``portway models``: its window,
    its maximum output and its prices per million tokens."""
    parts = []
    if info.context_window is not None:
        parts.append(f"context {info.context_window:,}")
    if info.max_output_tokens is not None:
        parts.append(f"output {info.max_output_tokens:,}")
    prices = info.price.as_dict() if info.price is not None else {}
    if prices:
        parts.append(", ".join(f"${value:g} {key.replace('_', ' ')}" for key, value in prices.items())
                     + " per 1M tokens")
    return " · ".join(parts)


def build_parser(extra: list[tuple[str, Callable[..., int], str, Callable[..., None] | None]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portway", description="Portway LLM gateway")
    parser.add_argument("--version", action="version", version=f"portway {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", "-c", help=DISCOVERY_HELP)
    serve.add_argument("--host", help="interface to bind (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: server.port, 8787)")
    serve.add_argument("--workers", type=int, help="worker processes sharing the port")
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without a master key")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--log-format", choices=logs.FORMATS, help="log lines as text or JSON (default: server.log_format)")
    serve.add_argument("--no-access-log", action="store_true", help="no line per request (server.access_log: false)")
    serve.add_argument("--data-dir", help=f"where the default SQLite store lives (default: ${DATA_DIR_ENV}, else "
                       "$XDG_DATA_HOME/portway, else ~/.local/share/portway)")
    serve.set_defaults(handler=cmd_serve)

    plugins = sub.add_parser("plugins", help="list installed plugins and load errors")
    plugins.add_argument("--json", action="store_true")
    plugins.add_argument("--config", "-c", help="apply this config's plugins.disable; " + DISCOVERY_HELP)
    plugins.set_defaults(handler=cmd_plugins)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate a config file, reporting every problem")
    check.add_argument("file", nargs="?", help=DISCOVERY_HELP)
    check.set_defaults(handler=cmd_config_check)

    models = sub.add_parser("models", help="list the model names the config exposes")
    models.add_argument("--config", "-c", help=DISCOVERY_HELP)
    models.set_defaults(handler=cmd_models)

    for name, handler, help_text, configure in extra:
        cmd = sub.add_parser(name, help=help_text)
        if configure is not None:
            configure(cmd)
        cmd.set_defaults(handler=handler)
    return parser


def _plugin_commands() -> list[tuple[str, Callable[..., int], str, Callable[..., None] | None]]:
    commands: list[tuple[str, Callable[..., int], str, Callable[..., None] | None]] = []

    def register(name: str, handler: Callable[..., int], help: str = "", arguments: Callable[..., None] | None = None) -> None:
        commands.append((name, handler, help, arguments))

    pm = plugin_loader.new_manager()
    # Quiet while collecting commands: each command reports load failures its own way.
    with configcheck.quiet_plugin_loading():
        plugin_loader.load(pm)
    pm.hook.register_commands(register=register)
    return commands


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser(_plugin_commands())
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(f"portway: config error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
