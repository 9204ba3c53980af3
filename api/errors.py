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
    # FAQs (crm_store/faqs/)
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
