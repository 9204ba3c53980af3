"""The action server: rasa_sdk's, plus the knowledge base's warm-up once the server has started.

    python -m actions --port 5055

takes every option of `python -m rasa_sdk` (`--actions` defaults to this package) and serves the
same HTTP API. With `KNOWLEDGE_WARM_UP=1` (`crmbot up` sets it) each server process starts loading
the FAQ encoder when it has started listening, so that the first customer question does not wait
for it; nothing is loaded at import, and a question that arrives during the load waits for it
(`actions.support.knowledge_service`).

rasa_sdk builds its Sanic app in every worker process from a factory (`rasa_sdk.endpoint.run`);
this module runs the server the same way with a factory that also registers the warm-up as an
`after_server_start` listener, so the load happens in the process that answers the actions.
"""

import asyncio
import importlib
import logging
from argparse import Namespace
from functools import partial
from typing import Any

from rasa_sdk import utils
from rasa_sdk.constants import APPLICATION_ROOT_LOGGER_NAME, DEFAULT_KEEP_ALIVE_TIMEOUT
from rasa_sdk.endpoint import create_app_for_serve, create_argument_parser, create_ssl_config
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.grpc_server import run_grpc
from sanic import Sanic
from sanic.worker.loader import AppLoader

from actions import support
from crm_store.settings import get_knowledge_settings, get_stack_settings

logger = logging.getLogger(__name__)

ACTIONS_PACKAGE = "actions"


async def warm_up_knowledge(_app: Sanic[Any, Any]) -> None:
    """Start loading the knowledge base in the background (the holder's own thread)."""
    support.knowledge_holder().start_loading()
    logger.info("loading the knowledge base in the background")


def create_app(
    executor: ActionExecutor,
    *,
    cors_origins: str | list[str] | None,
    auto_reload: bool,
    endpoints: str,
    keep_alive_timeout: int = DEFAULT_KEEP_ALIVE_TIMEOUT,
) -> Sanic[Any, Any]:
    """rasa_sdk's app for one server process, with the warm-up listener when warm-up is wanted."""
    app: Sanic[Any, Any] = create_app_for_serve(
        executor,
        cors_origins=cors_origins,
        auto_reload=auto_reload,
        endpoints=endpoints,
        keep_alive_timeout=keep_alive_timeout,
    )
    if get_knowledge_settings().warm_up:
        app.register_listener(warm_up_knowledge, "after_server_start")
    return app


def serve(args: Namespace) -> None:
    """Run the HTTP server as `rasa_sdk.endpoint.run` does, with `create_app` as the app factory."""
    executor = ActionExecutor()
    executor.register_package(args.actions_module or args.actions or ACTIONS_PACKAGE)
    loader = AppLoader(
        factory=partial(
            create_app,
            executor,
            cors_origins=args.cors,
            auto_reload=args.auto_reload,
            endpoints=args.endpoints,
        )
    )
    app = loader.load()
    ssl_config = create_ssl_config(args.ssl_certificate, args.ssl_keyfile, args.ssl_password)
    # The action server trusts message metadata, so by default it listens on loopback only.
    host = get_stack_settings().action_host
    logger.info("action server listening on %s:%d", host, args.port)
    app.prepare(host=host, port=args.port, ssl=ssl_config, workers=utils.number_of_sanic_workers())
    Sanic.serve(primary=app, app_loader=loader)


def main(argv: list[str] | None = None) -> None:
    """Parse rasa_sdk's options, set up its logging, and serve (gRPC as rasa_sdk does, without warm-up)."""
    args = create_argument_parser().parse_args(argv)
    logging.getLogger("matplotlib").setLevel(logging.WARN)
    utils.configure_colored_logging(args.loglevel)
    utils.configure_file_logging(
        logging.getLogger(APPLICATION_ROOT_LOGGER_NAME),
        args.log_file,
        args.loglevel,
        args.logging_config_file,
    )
    utils.update_sanic_log_level()
    if args.grpc:
        executor = ActionExecutor()
        executor.register_package(args.actions_module or args.actions or ACTIONS_PACKAGE)
        asyncio.run(
            run_grpc(
                executor,
                args.port,
                args.ssl_certificate,
                args.ssl_keyfile,
                args.ssl_ca_file,
                args.auto_reload,
                args.endpoints,
            )
        )
        return
    serve(args)


if __name__ == "__main__":
    # Run as `python -m`, this file is `__main__`, which Sanic's worker processes cannot import the
    # factory from: run it under its own name, `actions.__main__`, which they can.
    importlib.import_module("actions.__main__").main()
