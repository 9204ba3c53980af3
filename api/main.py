"""The FastAPI application: routers, lifespan resources and error handlers.

Run with `uvicorn api.main:app`. Tests call `create_app()` for a fresh app per test.
"""

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from api import STATIC_DIR, errors
from api.channels import socketio as socketio_channel
from api.channels import wechat, wecom
from api.channels.text_replies import ButtonChoices
from api.rate_limit import RateLimits
from api.routes import (
    analytics,
    auth,
    care,
    chat,
    customers,
    faqs,
    handoffs,
    health,
    knowledge,
    opportunities,
    privacy,
    reminders,
    widget,
)
from api.texts import wording
from crm_store.db import create_engine_for, make_session_factory
from crm_store.settings import get_api_settings, get_knowledge_settings
from knowledge.holder import KnowledgeHolder

logger = logging.getLogger(__name__)

INTERNAL_ERROR_DETAIL = wording("gateway.internal_error")

# The chat page loads nothing from elsewhere (the machines are offline) and is never framed.
_PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: http: https:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# The ids `/api/customers/{customer_id}` accepts (api/routes/customers.py), spelled as the chat
# page links them; any other path under /customers/ is an unknown page.
_CUSTOMER_PAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the shared HTTP client and the database engine once; release them on shutdown."""
    settings = get_api_settings()
    engine = create_engine_for()
    # trust_env=False: every call goes to loopback services, and an HTTP(S)_PROXY in the
    # environment must not route them (with the user's message) through a proxy.
    http_client = httpx.AsyncClient(
        timeout=settings.rasa_timeout_s,
        trust_env=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.knowledge = KnowledgeHolder(app.state.session_factory)
    if get_knowledge_settings().warm_up:
        app.state.knowledge.start_loading()
    app.state.http_client = http_client
    app.state.rate_limits = RateLimits.connect(settings.redis_url)
    app.state.button_choices = ButtonChoices.connect(settings.redis_url)
    app.state.started_at = time.monotonic()
    # WeChat followers do not poll: staff replies of their hand-off cases are pushed to them.
    wechat_pusher = wechat.start_pusher(
        settings, http_client, app.state.session_factory, app.state.button_choices
    )
    try:
        yield
    finally:
        if wechat_pusher is not None:
            wechat_pusher.cancel()
        await app.state.rate_limits.aclose()
        await app.state.button_choices.aclose()
        await http_client.aclose()
        engine.dispose()


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's default echoes each offending `input` back (a whole over-long body, say);
    # keep only where and what, which is the documented HTTPValidationError shape.
    problems = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")} for e in problems
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": INTERNAL_ERROR_DETAIL})


def create_app() -> FastAPI:
    """Build the API: `/api/…`, `/health`, the chat page at `/`, customer pages and docs at `/docs`."""
    # The machines are offline: Swagger UI's scripts are served from the package, not a CDN.
    app = FastAPIOffline(
        title="小助手 CRM API",
        version="0.1.0",
        description=(
            "Public entry of 小助手: chat gateway to the Rasa dialogue engine, hand-off of a "
            "conversation to staff, and health."
        ),
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    errors.install(app)
    app.add_exception_handler(Exception, _unhandled_error)

    api_router = APIRouter(prefix="/api")
    api_router.include_router(auth.router)
    api_router.include_router(chat.router)
    api_router.include_router(handoffs.router)
    api_router.include_router(knowledge.router)
    api_router.include_router(faqs.router)
    api_router.include_router(customers.router)
    api_router.include_router(opportunities.router)
    api_router.include_router(reminders.router)
    api_router.include_router(care.router)
    api_router.include_router(analytics.router)
    api_router.include_router(privacy.router)
    app.include_router(api_router)
    app.include_router(health.router)
    app.include_router(wechat.router)
    app.include_router(wecom.router)
    # The dashboard page and plotly.js from the installed package (before the /static mount).
    app.include_router(analytics.pages)
    # Rasa's standard web widget, served unmodified (before the /static mount).
    app.include_router(widget.pages)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": _PAGE_CSP})

    # The staff page of one customer; its script reads the sign-in the chat page keeps and calls
    # `/api/customers/{customer_id}`, so the page itself holds no data and needs no sign-in.
    @app.get("/customers/{customer_id}", include_in_schema=False)
    async def customer_page(customer_id: str) -> FileResponse:
        if not _CUSTOMER_PAGE_ID.fullmatch(customer_id):
            raise HTTPException(status_code=404)
        return FileResponse(STATIC_DIR / "customer.html", headers={"Content-Security-Policy": _PAGE_CSP})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # The web widget's Socket.IO channel (Rasa's socketio protocol) at `CRM_SOCKETIO_PATH`.
    socketio_channel.mount(app, get_api_settings())
    return app


app = create_app()

__all__: list[str] = ["app", "create_app"]
