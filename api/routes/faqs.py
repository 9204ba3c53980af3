"""Staff endpoints of the FAQ knowledge base: FAQs, the unanswered-question queue, answer statistics.

Mounted under `/api`: `/api/faqs`, `/api/faq/unanswered`, `/api/faq/stats`. Every endpoint needs
`Authorization: Bearer <token>` of a signed-in employee (`api.auth`). The rules live in `crm_store.faqs` and
`crm_store.faq_rules`; a refusal passes through to the app's handler (`api/errors.py`), which answers
in Chinese: 404 for an unknown FAQ or queued question, 409 for a taken id or a question already
resolved, 422 (FastAPI's `detail` list, `msg` in Chinese) for a value that breaks a rule.

After every committed FAQ change the running knowledge index, if the app has one in
`app.state.knowledge`, is told at once (`notify_changed`); it also follows
`crm_store.faqs.faq_revision`, so a missed notice only delays it.
"""

import inspect
import logging
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Annotated, Any, Final, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session, sessionmaker

from api.auth import AUTH_ERRORS, StaffDep
from api.deps import SessionFactoryDep
from api.schemas.common import ErrorDetail
from api.schemas.faqs import (
    FaqCreateIn,
    FaqOut,
    FaqStatsOut,
    FaqUpdateIn,
    ResolveIn,
    UnansweredOut,
    UnansweredStatus,
)
from crm_store.faqs import (
    UNANSWERED_LIST_MAX,
    create_faq,
    delete_faq,
    dismiss_unanswered,
    feedback_summary,
    get_faq,
    list_faqs,
    list_unanswered,
    resolve_unanswered,
    update_faq,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The largest id a 32-bit INTEGER primary key holds; larger ids are refused with 422, not a DB error.
_MAX_ROW_ID: Final = 2**31 - 1

# pydantic's messages are English; staff read Chinese. Unlisted types fall back to a generic reason.
_VALIDATION_MESSAGES: Final = {
    "missing": "缺少必填字段",
    "string_type": "应为文本",
    "list_type": "应为列表",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "bool_type": "应为 true 或 false",
    "bool_parsing": "应为 true 或 false",
    "model_type": "应为 JSON 对象",
    "model_attributes_type": "应为 JSON 对象",
    "dict_type": "应为 JSON 对象",
    "extra_forbidden": "不认识的字段",
    "json_invalid": "请求体不是有效的 JSON",
    "string_too_short": "太短",
    "string_too_long": "太长（最多 {max_length} 个字符）",
    "too_long": "条目太多（最多 {max_length} 条）",
    "greater_than_equal": "应不小于 {ge}",
    "less_than_equal": "应不大于 {le}",
    "literal_error": "取值只能是 {expected}",
}


def _in_chinese(error: dict[str, Any]) -> dict[str, Any]:
    kind = str(error.get("type", ""))
    if kind == "value_error":
        # A reason raised as ValueError by a body validator; pydantic prefixes it.
        message = str(error.get("msg", "")).removeprefix("Value error, ")
    else:
        template = _VALIDATION_MESSAGES.get(kind, "值无效")
        try:
            message = template.format(**error.get("ctx", {}))
        except (KeyError, IndexError):
            message = "值无效"
    return {"loc": error.get("loc", ()), "msg": message, "type": kind}


class _ChineseValidationRoute(APIRoute):
    """A route whose 422 details carry Chinese messages (the app's handler then shapes the body)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise RequestValidationError([_in_chinese(e) for e in exc.errors()], body=exc.body) from None

        return route


router = APIRouter(tags=["faqs"], route_class=_ChineseValidationRoute)

FaqId = Annotated[str, Path(min_length=1, max_length=64, description="The FAQ id, e.g. F001.")]
UnansweredId = Annotated[int, Path(ge=1, le=_MAX_ROW_ID, description="The queued question's id.")]

_FAQ_ERRORS: dict[int | str, dict[str, object]] = {
    **AUTH_ERRORS,
    404: {"model": ErrorDetail, "description": "No such FAQ."},
}
_WRITE_ERRORS: dict[int | str, dict[str, object]] = {
    **_FAQ_ERRORS,
    409: {"model": ErrorDetail, "description": "The FAQ id is taken."},
}
_QUEUE_ERRORS: dict[int | str, dict[str, object]] = {
    **AUTH_ERRORS,
    404: {"model": ErrorDetail, "description": "No such queued question, or no such FAQ to add it to."},
    409: {"model": ErrorDetail, "description": "Already resolved, or the new FAQ's id is taken."},
}


async def _run(work: Callable[[], T]) -> T:
    """Run store work in a worker thread; a refused operation's `CrmError` goes on to the app's
    handler (`api/errors.py`), which turns it into its status and Chinese message."""
    return await anyio.to_thread.run_sync(work)


async def _knowledge_changed(request: Request) -> None:
    """Tell the app's knowledge index (if any) that FAQs changed; call only after the commit.

    `notify_changed` must be cheap and non-blocking (it may be a coroutine function). Its failure
    does not fail the request, whose change is committed: the index catches up by polling.
    """
    knowledge = getattr(request.app.state, "knowledge", None)
    if knowledge is None:
        return
    try:
        outcome = knowledge.notify_changed()
        if inspect.isawaitable(outcome):
            await outcome
    except Exception as exc:
        logger.warning("知识索引未能收到 FAQ 变更通知（%s），将由轮询补上", type(exc).__name__)


def _read(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    with factory() as session:
        return work(session)


def _write(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    with factory.begin() as session:
        return work(session)


def _faqs(session: Session) -> list[FaqOut]:
    return [FaqOut.of(faq) for faq in list_faqs(session)]


def _unanswered(session: Session, status_: str, limit: int) -> list[UnansweredOut]:
    return [UnansweredOut.of(row) for row in list_unanswered(session, status_, limit)]


def _alts(values: Sequence[str] | None) -> list[str] | None:
    return list(values) if values is not None else None


@router.get("/faqs", summary="List every FAQ", response_model=list[FaqOut], responses=AUTH_ERRORS)
async def list_all(_staff: StaffDep, sessions: SessionFactoryDep) -> list[FaqOut]:
    """All FAQs by id, with their alternative phrasings."""
    return await _run(partial(_read, sessions, _faqs))


@router.get("/faqs/{faq_id}", summary="Show one FAQ", response_model=FaqOut, responses=_FAQ_ERRORS)
async def show(faq_id: FaqId, _staff: StaffDep, sessions: SessionFactoryDep) -> FaqOut:
    """The FAQ, or 404 "FAQ F099 不存在"."""
    return await _run(partial(_read, sessions, lambda session: FaqOut.of(get_faq(session, faq_id))))


@router.post(
    "/faqs",
    summary="Add a FAQ",
    status_code=status.HTTP_201_CREATED,
    response_model=FaqOut,
    responses=_WRITE_ERRORS,
)
async def create(body: FaqCreateIn, request: Request, staff: StaffDep, sessions: SessionFactoryDep) -> FaqOut:
    """Add the FAQ; the assistant can answer with it as soon as the index has re-read the FAQs."""

    def work(session: Session) -> FaqOut:
        faq = create_faq(
            session,
            question=body.question,
            answer=body.answer,
            category=body.category,
            alt_questions=body.alt_questions,
            faq_id=body.faq_id,
            actor_id=staff.employee_id,
        )
        return FaqOut.of(faq)

    created = await _run(partial(_write, sessions, work))
    await _knowledge_changed(request)
    logger.info("staff created FAQ %s", created.faq_id)
    return created


async def _update(
    faq_id: str, body: FaqUpdateIn, request: Request, actor_id: str | None, sessions: sessionmaker[Session]
) -> FaqOut:
    # An explicit null clears the category; an absent one leaves it.
    category = body.category
    if category is None and "category" in body.model_fields_set:
        category = ""

    def work(session: Session) -> FaqOut:
        faq = update_faq(
            session,
            faq_id,
            question=body.question,
            answer=body.answer,
            category=category,
            alt_questions=_alts(body.alt_questions),
            actor_id=actor_id,
        )
        return FaqOut.of(faq)

    updated = await _run(partial(_write, sessions, work))
    await _knowledge_changed(request)
    logger.info("staff updated FAQ %s", updated.faq_id)
    return updated


@router.put("/faqs/{faq_id}", summary="Change a FAQ", response_model=FaqOut, responses=_FAQ_ERRORS)
async def replace(
    faq_id: FaqId, body: FaqUpdateIn, request: Request, staff: StaffDep, sessions: SessionFactoryDep
) -> FaqOut:
    """Change the fields given; fields left out stay as they are (the same as PATCH)."""
    return await _update(faq_id, body, request, staff.employee_id, sessions)


@router.patch(
    "/faqs/{faq_id}", summary="Change some fields of a FAQ", response_model=FaqOut, responses=_FAQ_ERRORS
)
async def patch(
    faq_id: FaqId, body: FaqUpdateIn, request: Request, staff: StaffDep, sessions: SessionFactoryDep
) -> FaqOut:
    """Change the fields given; `alt_questions` replaces the whole list."""
    return await _update(faq_id, body, request, staff.employee_id, sessions)


@router.delete(
    "/faqs/{faq_id}",
    summary="Delete a FAQ",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_FAQ_ERRORS,
)
async def remove(faq_id: FaqId, request: Request, staff: StaffDep, sessions: SessionFactoryDep) -> Response:
    """Delete the FAQ; the votes on it stay in the statistics."""
    await _run(partial(_write, sessions, partial(delete_faq, faq_id=faq_id, actor_id=staff.employee_id)))
    await _knowledge_changed(request)
    logger.info("staff deleted FAQ %s", faq_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/faq/unanswered",
    summary="List the questions the assistant could not answer, the most asked first",
    response_model=list[UnansweredOut],
    responses=AUTH_ERRORS,
)
async def unanswered(
    _staff: StaffDep,
    sessions: SessionFactoryDep,
    status_: Annotated[UnansweredStatus, Query(alias="status")] = "open",
    limit: Annotated[int, Query(ge=1, le=UNANSWERED_LIST_MAX)] = 50,
) -> list[UnansweredOut]:
    """Queued questions of one status (open by default), personal data masked."""
    return await _run(partial(_read, sessions, partial(_unanswered, status_=status_, limit=limit)))


@router.post(
    "/faq/unanswered/{unanswered_id}/resolve",
    summary="Answer a queued question: a new FAQ, or a new phrasing of an existing one",
    status_code=status.HTTP_201_CREATED,
    response_model=FaqOut,
    responses=_QUEUE_ERRORS,
)
async def resolve(
    unanswered_id: UnansweredId,
    body: ResolveIn,
    request: Request,
    staff: StaffDep,
    sessions: SessionFactoryDep,
) -> FaqOut:
    """With `answer`: a new FAQ (question = `question` or the customer's words). With only `faq_id`:
    the question is added to that FAQ's alternative phrasings. Returns the FAQ that now answers it."""

    def work(session: Session) -> FaqOut:
        faq = resolve_unanswered(
            session,
            unanswered_id,
            answer=body.answer,
            category=body.category,
            faq_id=body.faq_id,
            question=body.question,
            actor_id=staff.employee_id,
        )
        return FaqOut.of(faq)

    faq = await _run(partial(_write, sessions, work))
    await _knowledge_changed(request)
    logger.info("staff resolved unanswered question %s with FAQ %s", unanswered_id, faq.faq_id)
    return faq


@router.post(
    "/faq/unanswered/{unanswered_id}/dismiss",
    summary="Set a queued question aside",
    response_model=UnansweredOut,
    responses=_QUEUE_ERRORS,
)
async def dismiss(unanswered_id: UnansweredId, staff: StaffDep, sessions: SessionFactoryDep) -> UnansweredOut:
    """Mark it dismissed (off-topic, spam); it stays counted if asked again but leaves the open list."""

    def work(session: Session) -> UnansweredOut:
        return UnansweredOut.of(dismiss_unanswered(session, unanswered_id, actor_id=staff.employee_id))

    return await _run(partial(_write, sessions, work))


@router.get(
    "/faq/stats",
    summary="How helpful the answers are, and how much went unanswered",
    response_model=FaqStatsOut,
    responses=AUTH_ERRORS,
)
async def stats(_staff: StaffDep, sessions: SessionFactoryDep) -> FaqStatsOut:
    """Helpful / unhelpful votes per FAQ and overall (the deflection rate), plus unanswered asks."""
    return await _run(partial(_read, sessions, lambda session: FaqStatsOut.of(feedback_summary(session))))
