"""`/api/analytics`: managers' questions, query specs, the standing KPIs, service metrics; `/dashboard`.

- `POST /api/analytics/ask` answers a question in Chinese exactly as the chat does
  (`knowledge.manager_query.asking.ask`): the text, the spec, the table and the chart's kind.
- `POST /api/analytics/query` runs a spec (the dashboard's `?spec=` link from the chat).
- `GET /api/analytics/kpis`: 销售额, 订单数, 客单价, 新增客户数, 复购率, 投诉数, 平均满意度,
  加权商机金额 and 流失客户数 of this month so far and of last month, one spec each through
  `run_query`, so that every figure is the one a question would get.
- `GET /api/analytics/service-metrics?days=30`: `crm_store.analytics.service_metrics`, managers
  and admins only.

Every endpoint needs a staff sign-in (401 otherwise); scope is the services' (a salesperson's
figures are their customers', a manager's their region's). A question or spec the asker may not
see is 403, one the semantic layer cannot compute 422, each with the same polite words the chat
uses (`crm_store.analytics.answers.refusal_text`) and no figure.

The dashboard page (`GET /dashboard`, api/static/dashboard.html) holds no data: its script signs
in like the chat page and calls these endpoints. Its charts are drawn by plotly.js, served from the
installed `plotly` package at `/static/vendor/plotly.min.js`: nothing is loaded from the internet.
"""

import importlib.util
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session, sessionmaker

from api import STATIC_DIR
from api.auth import AUTH_ERRORS, StaffDep
from api.deps import SessionFactoryDep
from api.errors import status_for
from api.schemas.analytics import (
    AnswerOut,
    AskIn,
    KpiOut,
    KpisOut,
    PeriodIO,
    QueryIn,
    QuerySpecIO,
    ResultOut,
    ServiceMetricsOut,
)
from api.schemas.common import ErrorDetail
from crm_store import clock
from crm_store.access import Actor
from crm_store.analytics.answers import key_text, refusal_text, value_text
from crm_store.analytics.query import QueryResult, run_query
from crm_store.analytics.service_metrics import service_metrics, tracker_engine
from crm_store.analytics.spec import METRICS, TIME_GRAINS, Period, QuerySpec
from crm_store.errors import CrmError, Invalid
from knowledge.manager_query.asking import Answer, ask, chart_kind
from knowledge.manager_query.periods import month_period, month_to_date
from knowledge.manager_query.texts import render

__all__ = ["KPI_METRICS", "PLOTLY_SCRIPT", "pages", "router"]

KPI_METRICS: Final = (
    "sales",
    "orders",
    "avg_order_value",
    "new_customers",
    "repeat_rate",
    "complaints",
    "avg_csat",
    "weighted_pipeline",
    "lapsed_customers",
)
"""The standing KPIs of the dashboard, in the order it shows them."""

_PLOTLY_SPEC = importlib.util.find_spec("plotly")
PLOTLY_SCRIPT: Final = (
    Path(next(iter(_PLOTLY_SPEC.submodule_search_locations or ()))) / "package_data" / "plotly.min.js"
    if _PLOTLY_SPEC is not None
    else None
)
"""plotly.js as the `plotly` wheel ships it (found without importing the Python package)."""

# The dashboard loads nothing from elsewhere. plotly.js styles its SVG through style attributes
# and one stylesheet it builds, hence 'unsafe-inline' for styles (never for scripts).
_DASHBOARD_CSP: Final = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_A_YEAR_S: Final = 365 * 24 * 3600

_REFUSED: Final[dict[int | str, dict[str, Any]]] = {
    **AUTH_ERRORS,
    403: {"model": ErrorDetail, "description": "Outside your scope (no figure is given)."},
    404: {"model": ErrorDetail, "description": "A customer not in your scope."},
}

router = APIRouter(prefix="/analytics", tags=["analytics"])
pages = APIRouter(include_in_schema=False)


# -- conversions ---------------------------------------------------------------------------------------


def _number(value: Decimal | int | float | None) -> float | int | None:
    return float(value) if isinstance(value, Decimal) else value


def _spec_out(spec: QuerySpec | None) -> QuerySpecIO | None:
    return None if spec is None else QuerySpecIO.model_validate(spec.to_json())


def _spec_in(body: QuerySpecIO) -> QuerySpec:
    try:
        return QuerySpec.from_json(body.model_dump(mode="json"))
    except (KeyError, TypeError, ValueError):
        raise Invalid("spec_invalid", field="spec") from None


def _display_row(result: QueryResult, row: Sequence[Any], keys: Sequence[str | None]) -> list[str]:
    labels = [
        key_text(dimension, key) if dimension in TIME_GRAINS else str(label)
        for dimension, key, label in zip(result.spec.group_by, keys, row, strict=False)
    ]
    return [*labels, value_text(result.spec.metric, row[-1])]


def _result_out(result: QueryResult) -> ResultOut:
    metric = METRICS[result.spec.metric]
    keys = list(result.keys) or [() for _ in result.rows]
    return ResultOut(
        interpretation=result.interpretation,
        metric_label=metric.label,
        unit=metric.unit,
        columns=list(result.columns),
        rows=[[*(str(cell) for cell in row[:-1]), _number(row[-1])] for row in result.rows],
        keys=[list(k) for k in keys],
        display_rows=[_display_row(result, row, k) for row, k in zip(result.rows, keys, strict=False)],
        total=_number(result.total),
        total_text=value_text(result.spec.metric, result.total),
    )


def _answer_out(answer: Answer) -> AnswerOut:
    return AnswerOut(
        kind=answer.kind,
        text=answer.text,
        spec=_spec_out(answer.spec),
        result=_result_out(answer.result) if answer.result is not None else None,
        chart=answer.chart,
        options=list(answer.options),
    )


def _refused(error: CrmError) -> NoReturn:
    """A query the asker may not see or the layer cannot compute, in the chat's words, no figure."""
    status = status_for(error)
    if isinstance(error, Invalid):
        where = ["body", error.field] if error.field else ["body"]
        raise HTTPException(422, detail=[{"loc": where, "msg": refusal_text(error), "type": "value_error"}])
    raise HTTPException(status, detail=refusal_text(error))


def _period_io(period: Period) -> PeriodIO:
    return PeriodIO(start=period.start, end=period.end, label=period.label)


# -- work in a worker thread (the store is synchronous) ----------------------------------------------


def _ask(
    factory: sessionmaker[Session], actor: Actor, question: str, previous: QuerySpec | None
) -> AnswerOut:
    with factory() as session:
        try:
            answer = ask(session, actor, question, today=clock.today(), previous=previous)
        except CrmError as error:
            _refused(error)
    return _answer_out(answer)


def _query(factory: sessionmaker[Session], actor: Actor, spec: QuerySpec) -> AnswerOut:
    with factory() as session:
        try:
            result = run_query(session, spec, actor, today=clock.today())
        except CrmError as error:
            _refused(error)
    chart = chart_kind(spec, result)
    return AnswerOut(
        kind="result",
        text=result.interpretation,
        spec=_spec_out(spec),
        result=_result_out(result),
        chart=chart,
        options=[],
    )


def _kpis(factory: sessionmaker[Session], actor: Actor) -> KpisOut:
    today = clock.today()
    current = month_to_date(today)
    last_day = current.start - timedelta(days=1)
    previous = month_period(last_day.year, last_day.month, today)
    found: list[KpiOut] = []
    with factory() as session:
        for metric in KPI_METRICS:
            now, before = (
                run_query(session, QuerySpec(metric, period=period), actor, today=today).total
                for period in (current, previous)
            )
            found.append(
                KpiOut(
                    metric=metric,
                    label=METRICS[metric].label,
                    unit=METRICS[metric].unit,
                    current=_number(now),
                    previous=_number(before),
                    current_text=value_text(metric, now),
                    previous_text=value_text(metric, before),
                )
            )
    return KpisOut(current_period=_period_io(current), previous_period=_period_io(previous), kpis=found)


def _service_metrics(factory: sessionmaker[Session], actor: Actor, days: int) -> ServiceMetricsOut:
    today = clock.today()
    period = Period(today - timedelta(days=days - 1), today, render("period.recent_days", count=days))
    tracker = tracker_engine()
    try:
        with factory() as session:
            figures = service_metrics(session, tracker, actor, period=period)
    finally:
        if tracker is not None:
            tracker.dispose()
    return ServiceMetricsOut.model_validate(figures.to_json())


# -- endpoints -----------------------------------------------------------------------------------------


@router.post(
    "/ask",
    summary="Ask a question about the figures, in Chinese",
    response_model=AnswerOut,
    responses=_REFUSED,
)
async def ask_question(body: AskIn, staff: StaffDep, sessions: SessionFactoryDep) -> AnswerOut:
    """ "上个月华东区销售额最高的五个客户": the answer, its spec, table and chart kind, in your scope."""
    previous = _spec_in(body.previous) if body.previous is not None else None
    return await anyio.to_thread.run_sync(partial(_ask, sessions, staff, body.question, previous))


@router.post("/query", summary="Run a query spec", response_model=AnswerOut, responses=_REFUSED)
async def query(body: QueryIn, staff: StaffDep, sessions: SessionFactoryDep) -> AnswerOut:
    """The figures of a spec (as `ask` answers it), e.g. the one a chat answer links to."""
    spec = _spec_in(body.spec)
    return await anyio.to_thread.run_sync(partial(_query, sessions, staff, spec))


@router.get("/kpis", summary="The standing KPIs of your scope", response_model=KpisOut, responses=_REFUSED)
async def kpis(staff: StaffDep, sessions: SessionFactoryDep) -> KpisOut:
    """This month so far against last month: 销售额, 订单数, 客单价, 新增客户数, 复购率, 投诉数 …"""
    return await anyio.to_thread.run_sync(partial(_kpis, sessions, staff))


@router.get(
    "/service-metrics",
    summary="Deflection, fallback and hand-off rates, CSAT, care delivery (managers and admins)",
    response_model=ServiceMetricsOut,
    responses={**AUTH_ERRORS, 403: {"model": ErrorDetail, "description": "Not a manager or an admin."}},
)
async def get_service_metrics(
    staff: StaffDep,
    sessions: SessionFactoryDep,
    days: Annotated[int, Query(ge=1, le=366, description="The last this many days, today included.")] = 30,
) -> ServiceMetricsOut:
    """How the assistant served customers over the last `days` days, in your scope."""
    return await anyio.to_thread.run_sync(partial(_service_metrics, sessions, staff, days))


# -- the page and its chart library ---------------------------------------------------------------------


@pages.get("/dashboard")
async def dashboard() -> FileResponse:
    return FileResponse(STATIC_DIR / "dashboard.html", headers={"Content-Security-Policy": _DASHBOARD_CSP})


@pages.get("/static/vendor/plotly.min.js")
async def plotly_script() -> FileResponse:
    """plotly.js from the installed package; its URL carries the version, so it is cached for a year."""
    if PLOTLY_SCRIPT is None or not PLOTLY_SCRIPT.is_file():
        raise HTTPException(status_code=404)
    return FileResponse(
        PLOTLY_SCRIPT,
        media_type="text/javascript",
        headers={"Cache-Control": f"public, max-age={_A_YEAR_S}, immutable"},
    )
