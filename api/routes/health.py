"""`GET /health`: is every component the chat depends on answering?

Checks run concurrently with a short timeout each, so the endpoint answers within about
`health_timeout_s` even when a component hangs.

Rasa counts as ready when `GET /status` answers 200 with a non-empty `model_file`. If
`/status` answers 401, 403 or 404 (Rasa started without `--enable-api`, or the token in
`CRM_RASA_TOKEN` is missing or wrong), the check falls back to `GET /` = 200 and reports
`model_loaded` as unknown: Rasa 3 only starts serving HTTP after it has loaded its agent,
and the chat webhook needs no token, so chat works even though `/status` is closed to us.
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import TypeVar

import anyio
import anyio.to_thread
import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from api.deps import EngineDep, HttpClientDep, SettingsDep, UptimeDep
from api.schemas.health import (
    ComponentHealth,
    DatabaseHealth,
    HealthComponents,
    HealthReport,
    HealthStatus,
    RasaHealth,
    ReplicaHealth,
)
from crm_store.db import ping
from crm_store.settings import ApiSettings

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

Health = TypeVar("Health", bound=ComponentHealth)

# /status answers these when the HTTP API is off or our token is refused.
_STATUS_CLOSED = frozenset({401, 403, 404})


async def check_database(engine: Engine, timeout_s: float) -> DatabaseHealth:
    """Run `crm_store.db.ping` in a worker thread, giving up after `timeout_s`."""
    ok = False
    # abandon_on_cancel lets the timeout return even while the driver is still blocked.
    with anyio.move_on_after(timeout_s) as scope:
        ok = await anyio.to_thread.run_sync(ping, engine, abandon_on_cancel=True)
    if scope.cancelled_caught:
        return DatabaseHealth(ok=False, dialect=engine.dialect.name, detail="timed out")
    return DatabaseHealth(ok=ok, dialect=engine.dialect.name, detail=None if ok else "SELECT 1 failed")


async def check_rasa(http: httpx.AsyncClient, settings: ApiSettings, base: str) -> RasaHealth:
    """Ask the Rasa server at `base` whether it runs and has a model loaded (see the module docstring)."""
    params = {"token": settings.rasa_token.get_secret_value()} if settings.rasa_token else None
    try:
        status = await http.get(f"{base}/status", params=params, timeout=settings.health_timeout_s)
    except httpx.HTTPError as exc:
        return RasaHealth(ok=False, detail=f"unreachable ({type(exc).__name__})")

    if status.status_code in _STATUS_CLOSED:
        try:
            root = await http.get(f"{base}/", timeout=settings.health_timeout_s)
        except httpx.HTTPError as exc:
            return RasaHealth(ok=False, detail=f"unreachable ({type(exc).__name__})")
        if root.status_code != 200:
            return RasaHealth(ok=False, detail=f"/ answered HTTP {root.status_code}")
        return RasaHealth(ok=True, detail=f"/status answered HTTP {status.status_code}; model state unknown")

    if status.status_code != 200:
        return RasaHealth(ok=False, detail=f"/status answered HTTP {status.status_code}")
    try:
        body = status.json()
    except ValueError:
        return RasaHealth(ok=False, detail="/status answered a body that is not JSON")
    model_file = body.get("model_file") if isinstance(body, dict) else None
    loaded = isinstance(model_file, str) and bool(model_file.strip())
    return RasaHealth(ok=loaded, model_loaded=loaded, detail=None if loaded else "no model loaded")


async def check_action_server(http: httpx.AsyncClient, settings: ApiSettings, base: str) -> ComponentHealth:
    """Ask the rasa-sdk action server at `base` on its own `/health` endpoint."""
    url = base + "/health"
    try:
        response = await http.get(url, timeout=settings.health_timeout_s)
    except httpx.HTTPError as exc:
        return ComponentHealth(ok=False, detail=f"unreachable ({type(exc).__name__})")
    if response.status_code != 200:
        return ComponentHealth(ok=False, detail=f"/health answered HTTP {response.status_code}")
    return ComponentHealth(ok=True)


@router.get(
    "/health",
    summary="Health of the API and the components it depends on",
    response_model=HealthReport,
    responses={503: {"model": HealthReport, "description": "The chat cannot be served."}},
)
async def health(
    settings: SettingsDep, http: HttpClientDep, engine: EngineDep, uptime_s: UptimeDep
) -> JSONResponse:
    """Answer 200 when the chat can be served, else 503, with the failing components marked.

    `status` is `ok` when every component is; with several Rasa replicas, one that is down makes
    it `degraded` while the others serve the chat (still 200, so that a load balancer keeps
    sending customers to this API). It is `starting` while the API is younger than
    `health_startup_grace_s`, so the first minute after `crmbot up` (Rasa loading its model) does
    not read as an outage.
    """
    rasa_urls = settings.rasa_servers
    # One action server per replica, or one that every replica calls.
    action_urls = settings.action_servers * (len(rasa_urls) if len(settings.action_servers) == 1 else 1)
    database, rasa_checks, action_checks = await asyncio.gather(
        check_database(engine, settings.health_timeout_s),
        asyncio.gather(*(check_rasa(http, settings, url) for url in rasa_urls)),
        asyncio.gather(*(check_action_server(http, settings, url) for url in action_urls)),
    )
    replicas = [
        ReplicaHealth(rasa_url=url, rasa=rasa, action_server=action)
        for url, rasa, action in zip(rasa_urls, rasa_checks, action_checks, strict=True)
    ]
    if len(replicas) == 1:
        components = HealthComponents(
            database=database, rasa=replicas[0].rasa, action_server=replicas[0].action_server
        )
    else:
        components = HealthComponents(
            database=database,
            rasa=_any_of([r.rasa for r in replicas], "Rasa servers", RasaHealth),
            action_server=_any_of([r.action_server for r in replicas], "action servers", ComponentHealth),
            replicas=replicas,
        )
    serving = database.ok and any(r.rasa.ok and r.action_server.ok for r in replicas)
    all_ok = database.ok and all(r.rasa.ok and r.action_server.ok for r in replicas)
    status: HealthStatus
    if all_ok:
        status = "ok"
    elif uptime_s < settings.health_startup_grace_s:
        status = "starting"
    else:
        status = "degraded"
        failing = [name for name, c in components if isinstance(c, ComponentHealth) and not c.ok]
        if len(replicas) > 1:
            failing += [f"replica {r.rasa_url}" for r in replicas if not (r.rasa.ok and r.action_server.ok)]
        logger.info("health degraded: %s", ", ".join(failing))
    report = HealthReport(status=status, components=components)
    return JSONResponse(status_code=200 if serving else 503, content=report.model_dump(exclude_none=True))


def _any_of(checks: Sequence[ComponentHealth], what: str, kind: type[Health]) -> Health:
    """One replicated component as a whole: ok while at least one of its copies is."""
    answering = sum(check.ok for check in checks)
    detail = None if answering == len(checks) else f"{answering} of {len(checks)} {what} answer"
    return kind(ok=answering > 0, detail=detail)
