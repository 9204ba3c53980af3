"""How a refused service call becomes an HTTP answer: one status per error class, one catalogue of words.

Services raise `crm_store.errors.CrmError` subclasses with a code and data, never a sentence
(`crm_store/errors.py`). Routes let them through; the handler registered here answers:

| error         | status | body                                                               |
|---------------|--------|--------------------------------------------------------------------|
| `NotFound`    | 404    | `{"detail": "<message>"}`                                          |
| `Conflict`    | 409    | `{"detail": "<message>"}`                                          |
| `Locked`      | 423    | `{"detail": "<message>"}`                                          |
| `Unavailable` | 503    | `{"detail": "<message>"}`                                          |
| `Invalid`     | 422    | FastAPI's validation shape, `loc` naming the body field if known |

The message is the catalogue's Chinese template for the error's code, filled from its data; a code
the catalogue lacks falls back to its class's general wording, so staff never see a code alone.
"""

import logging
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from crm_store.errors import Conflict, CrmError, Invalid, Locked, NotFound, Unavailable

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: Final[dict[type[CrmError], int]] = {
    NotFound: 404,
    Invalid: 422,
    Conflict: 409,
    Locked: 423,
    Unavailable: 503,
}

GENERAL_MESSAGES: Final[dict[type[CrmError], str]] = {
    NotFound: "要找的记录不存在",
    Invalid: "提交的内容不符合要求",
    Conflict: "操作与当前状态冲突",
    Locked: "尝试次数过多，请稍后再试",
    Unavailable: "暂时无法处理，请稍后再试",
}

# Chinese wording of each error code the API can meet, filled with `str.format(**error.data)`.
# Grouped by the service that raises them.
MESSAGES: Final[dict[str, str]] = {
    # Hand-off (crm_store/handoff.py)
    "handoff_not_found": "转人工会话 {case_id} 不存在",
    "handoff_closed": "转人工会话 {case_id} 已结束",
    "reply_empty": "回复内容不能为空",
    "reply_too_long": "回复内容过长（超过 {limit} 字）",
    "employee_not_found": "员工 {employee_id} 不存在",
    "handoff_reason_unknown": "未知的转人工原因",
    "transcript_speaker_unknown": "转人工记录中有未知的发言方",
    "rating_out_of_range": "评分应为 {min} 到 {max} 的整数",
    "customer_not_found": "客户 {customer_id} 不存在",
    "ticket_not_found": "工单 {ticket_id} 不存在",
    # FAQs (crm_store/faqs/)
    "faq_not_found": "FAQ {faq_id} 不存在",
    "faq_id_taken": "FAQ 编号 {faq_id} 已存在",
    "unanswered_not_found": "待解答问题 {unanswered_id} 不存在",
    "unanswered_already_resolved": "待解答问题 {unanswered_id} 已解决（FAQ {faq_id}）",
    "unanswered_resolved_by_deleted_faq": "待解答问题 {unanswered_id} 已解决（FAQ 已删除）",
    "unanswered_resolved_not_dismissable": "待解答问题 {unanswered_id} 已解决，不能再忽略",
    "faq_exists_answer_given": "FAQ {faq_id} 已存在：要加为它的备选问法，请不要同时提供答案",
    "category_only_for_new_faq": "分类只用于新建 FAQ；要改已有 FAQ 的分类，请编辑该 FAQ",
    "resolve_needs_answer_or_faq": "请提供答案（新建 FAQ），或已有 FAQ 的编号（加为备选问法）",
    "unanswered_status_unknown": "状态只能是 {allowed[0]}、{allowed[1]}、{allowed[2]}",
    "unanswered_limit_out_of_range": "limit 应在 {min} 到 {max} 之间",
    # FAQ rules (crm_store/faq_rules.py); import reports word them alike (crm_store.importer.FAQ_REASONS)
    "faq_id_invalid": "FAQ 编号格式不对：只能含字母、数字、-、_、.，最长 {max_chars} 位",
    "faq_question_empty": "问题不能为空",
    "faq_question_too_long": "问题不能超过 {max_chars} 字",
    "faq_answer_empty": "答案不能为空",
    "faq_answer_too_long": "答案不能超过 {max_chars} 字",
    "faq_category_too_long": "分类不能超过 {max_chars} 字",
    "faq_alt_question_has_separator": "第 {position} 条备选问法不能包含“{separator}”",
    "faq_alt_question_too_long": "第 {position} 条备选问法不能超过 {max_chars} 字",
    "faq_alt_questions_too_many": "备选问法最多 {max_count} 条",
}


def status_for(error: CrmError) -> int:
    """The HTTP status of an error: that of the nearest class in `STATUS_BY_ERROR`, else 400."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def message_for(error: CrmError) -> str:
    """The Chinese message staff see for `error`, from its code's template or its class's wording."""
    template = MESSAGES.get(error.code)
    if template is not None:
        try:
            return template.format(**error.data)
        except (KeyError, IndexError, ValueError):
            logger.warning("message template of %s does not fit its data", error.code)
    for cls in type(error).__mro__:
        if cls in GENERAL_MESSAGES:
            return GENERAL_MESSAGES[cls]
    return "请求无法处理"


async def crm_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """Answer a refused service call with its status and Chinese message (see the module table)."""
    if not isinstance(exc, CrmError):  # pragma: no cover - registered for CrmError only
        raise exc
    status = status_for(exc)
    message = message_for(exc)
    if isinstance(exc, Invalid):
        where = ["body", exc.field] if exc.field else ["body"]
        return JSONResponse(
            status_code=status, content={"detail": [{"loc": where, "msg": message, "type": "value_error"}]}
        )
    return JSONResponse(status_code=status, content={"detail": message})


def install(app: FastAPI) -> None:
    """Register the handler on `app`."""
    app.add_exception_handler(CrmError, crm_error_handler)
