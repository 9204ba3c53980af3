"""How a refused service call becomes an HTTP answer: one status per error class, one catalogue of words.

Services raise `crm_store.errors.CrmError` subclasses with a code and data, never a sentence
(`crm_store/errors.py`). Routes let them through; the handler registered here answers:

| error         | status | body                                                               |
|---------------|--------|--------------------------------------------------------------------|
| `NotFound`    | 404    | `{"detail": "<message>"}`                                          |
| `Conflict`    | 409    | `{"detail": "<message>"}`                                          |
| `Locked`      | 423    | `{"detail": "<message>"}`                                          |
| `Unavailable` | 503    | `{"detail": "<message>"}`                                          |
| `Unauthenticated` | 401 | `{"detail": "<message>"}`, with `WWW-Authenticate: Bearer`       |
| `Forbidden`   | 403    | `{"detail": "<message>"}`                                          |
| `Invalid`     | 422    | FastAPI's validation shape, `loc` naming the body field if known |

The message is the catalogue's Chinese template for the error's code, filled from its data; a code
the catalogue lacks falls back to its class's general wording, so staff never see a code alone.
"""

import logging
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from crm_store.errors import (
    Conflict,
    CrmError,
    Forbidden,
    Invalid,
    Locked,
    NotFound,
    Unauthenticated,
    Unavailable,
)

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: Final[dict[type[CrmError], int]] = {
    NotFound: 404,
    Invalid: 422,
    Conflict: 409,
    Locked: 423,
    Unavailable: 503,
    Unauthenticated: 401,
    Forbidden: 403,
}

GENERAL_MESSAGES: Final[dict[type[CrmError], str]] = {
    NotFound: "要找的记录不存在",
    Invalid: "提交的内容不符合要求",
    Conflict: "操作与当前状态冲突",
    Locked: "尝试次数过多，请稍后再试",
    Unavailable: "暂时无法处理，请稍后再试",
    Unauthenticated: "请先登录",
    Forbidden: "您没有权限进行此操作",
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
    # Sign-in (crm_store/accounts.py, api/auth.py)
    "login_failed": "工号或密码不正确",
    "login_locked": "登录失败次数过多，账号已暂时锁定，请于 {until:%H:%M} 之后再试",
    "password_too_short": "密码至少需要 {min_chars} 位",
    "password_too_long": "密码不能超过 {max_chars} 位",
    "password_change_not_allowed": "您只能修改自己的密码",
    "token_missing": "请先登录员工账号",
    "token_expired": "登录已过期，请重新登录",
    "token_invalid": "登录状态无效，请重新登录",
    "sender_reserved": "会话编号不能以 {prefix} 开头",
    # Roles and scope (crm_store/access.py)
    "staff_only": "此功能仅限员工使用，请先登录员工账号",
    "role_not_allowed": "您的角色无权进行此操作",
    # Customer records (crm_store/customer360.py, customer_updates.py, opportunities.py, reminders.py)
    "field_not_updatable": "{field} 不能在这里修改",
    "no_changes": "没有要修改的内容",
    "phone_invalid": "手机号格式不对，请提供 11 位中国大陆手机号",
    "email_invalid": "电子邮箱格式不对",
    "city_invalid": "城市名称不对（最多 {max_chars} 个字，不含数字）",
    "birthday_invalid": "生日不是有效日期（例如 1990-03-05）",
    "birthday_in_future": "生日不能晚于今天",
    "notes_invalid": "备注应为文字",
    "notes_too_long": "备注不能超过 {max_chars} 字",
    "preference_empty": "偏好内容不能为空",
    "preference_too_long": "每条偏好不能超过 {max_chars} 字",
    "preferences_invalid": "偏好应为一条文字或文字列表",
    "preferences_too_many": "偏好最多 {max_count} 条",
    "opportunity_not_found": "商机 {opportunity_id} 不存在",
    "opportunity_closed": "商机 {opportunity_id} 已{stage}，不能再修改",
    "opportunity_amount_invalid": "金额应为大于 0 的数字",
    "opportunity_name_invalid": "商机名称不能为空，且不超过 {max_chars} 字",
    "opportunity_stage_invalid": "商机阶段只能是：线索、需求确认、报价、谈判、赢单、输单",
    "lost_reason_required": "标记输单需要填写原因",
    "lost_reason_too_long": "输单原因不能超过 {max_chars} 字",
    "task_not_found": "任务 {task_id} 不存在",
    "task_not_yours": "只有任务负责人或管理员可以完成任务 {task_id}",
    "task_not_open": "任务 {task_id} 已是{status}状态",
    # Visits (crm_store/visits.py)
    "visit_kind_unknown": "联系方式只能是：拜访、电话、微信、邮件、短信、会议、消息、其他",
    "visit_summary_empty": "请填写这次联系的内容",
    "visit_summary_too_long": "联系内容不能超过 {limit} 字",
    "visit_in_future": "联系日期不能晚于今天",
    "next_date_before_visit": "下次跟进日期不能早于这次联系的日期",
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
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
    return JSONResponse(status_code=status, content={"detail": message}, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handler on `app`."""
    app.add_exception_handler(CrmError, crm_error_handler)
