"""The floor of any gateway in front of Rasa: a Python HTTP hop that does nothing else.

    .venv-app/bin/python -m bench.floor_forwarder --rasa-url URL --port PORT

`POST /api/chat` takes `{"sender", "message"}`, sends it to Rasa's REST channel with the metadata
the gateway stamps for a web customer, and answers Rasa's reply as it came: the same server
(uvicorn with its defaults, as `crmbot up` runs the API, access log included), framework (FastAPI)
and client (one shared httpx.AsyncClient) as api/, without validation, sign-in, rate limit,
hand-off check or error handling. bench/chat_load.py measures it beside the API and bare Rasa
(`--floor`): what the hop itself costs, and so what is left to the gateway's own work. Issue 20,
item 3. Never run it as a service: it checks nothing.
"""

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.gateway import RASA_WEBHOOK_PATH
from bench.chat_load import CHAT_PATH, WEB_CUSTOMER_METADATA


def create_app(rasa_url: str) -> FastAPI:
    """The forwarder to the Rasa server at `rasa_url`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=rasa_url, timeout=60) as client:
            app.state.rasa = client
            yield

    app = FastAPI(lifespan=lifespan, openapi_url=None)

    @app.post(CHAT_PATH)
    async def forward(request: Request) -> JSONResponse:
        body = await request.json()
        turn = {"sender": body["sender"], "message": body["message"], "metadata": WEB_CUSTOMER_METADATA}
        reply = await request.app.state.rasa.post(RASA_WEBHOOK_PATH, json=turn)
        return JSONResponse(reply.json(), status_code=reply.status_code)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rasa-url", required=True, help="the Rasa server to forward to")
    parser.add_argument("--port", type=int, required=True, help="the loopback port to listen on")
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.rasa_url.rstrip("/")), host="127.0.0.1", port=args.port, server_header=False)


if __name__ == "__main__":
    main()
