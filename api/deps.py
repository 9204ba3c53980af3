"""FastAPI dependencies, declared once as `Annotated` aliases.

These are also the test seams: a test replaces one with `app.dependency_overrides`, e.g.
`app.dependency_overrides[get_http_client] = lambda: httpx.AsyncClient(transport=stub)`
points every call to Rasa and the action server at an in-process stub, and
`app.dependency_overrides[api_settings] = lambda: settings` changes the settings.

Each is `async def` although none of them waits for anything: FastAPI runs a plain `def`
dependency in a worker thread, a hop to a thread and back per dependency and request: the four
of a chat turn cost 0.28 ms of CPU and latency that way (one FastAPI process, four `def` against
four `async def` dependencies, on these machines).
"""

import time
from typing import Annotated

import httpx
from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from crm_store.settings import ApiSettings, get_api_settings


async def get_http_client(request: Request) -> httpx.AsyncClient:
    """Return the HTTP client shared by the whole app, created in the lifespan.

    Raises:
        RuntimeError: If the app was not started through its lifespan.
    """
    client = getattr(request.app.state, "http_client", None)
    if not isinstance(client, httpx.AsyncClient):
        raise RuntimeError("HTTP client missing: the app was not started through its lifespan")
    return client


async def get_engine(request: Request) -> Engine:
    """Return the CRM database engine created in the lifespan.

    Raises:
        RuntimeError: If the app was not started through its lifespan.
    """
    engine = getattr(request.app.state, "engine", None)
    if not isinstance(engine, Engine):
        raise RuntimeError("Database engine missing: the app was not started through its lifespan")
    return engine


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    """Return the CRM session factory created in the lifespan (one short session per use).

    Raises:
        RuntimeError: If the app was not started through its lifespan.
    """
    factory = getattr(request.app.state, "session_factory", None)
    if not isinstance(factory, sessionmaker):
        raise RuntimeError("Session factory missing: the app was not started through its lifespan")
    return factory


async def get_uptime_s(request: Request) -> float:
    """Return seconds since the app's lifespan started (infinite if it never did)."""
    started_at = getattr(request.app.state, "started_at", None)
    if not isinstance(started_at, float):
        return float("inf")
    return time.monotonic() - started_at


async def api_settings() -> ApiSettings:
    """Return the API's settings (`get_api_settings`, read once)."""
    return get_api_settings()


SettingsDep = Annotated[ApiSettings, Depends(api_settings)]
HttpClientDep = Annotated[httpx.AsyncClient, Depends(get_http_client)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
UptimeDep = Annotated[float, Depends(get_uptime_s)]
