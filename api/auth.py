"""Staff authentication: the bearer token `CRM_STAFF_TOKEN` of every staff endpoint.

There are no staff accounts yet: whoever holds the token acts as the single identity `STAFF_ID`
("staff"), which is what the audit log records.
"""

import secrets
from typing import Annotated, Final

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import Principal, SettingsDep
from api.schemas.common import ErrorDetail

STAFF_ID: Final = "staff"
"""The one staff identity until there are staff accounts: every token holder acts as it."""

STAFF_TOKEN_UNSET: Final = "未配置员工令牌（CRM_STAFF_TOKEN）"
STAFF_TOKEN_INVALID: Final = "未授权：请在 Authorization 头中提供有效的员工令牌（Bearer）。"

AUTH_ERRORS: Final[dict[int | str, dict[str, object]]] = {
    401: {"model": ErrorDetail, "description": "No staff token, or a wrong one."},
    503: {"model": ErrorDetail, "description": "The server has no staff token configured."},
}
"""The OpenAPI `responses` every staff endpoint shares."""

_bearer = HTTPBearer(auto_error=False, description="员工令牌：环境变量 CRM_STAFF_TOKEN 的值。")


def require_staff(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Admit the holder of the staff token as `STAFF_ID`.

    Raises:
        HTTPException: 503 when the server has no token configured; 401 when the request has no
            bearer token or a wrong one.
    """
    expected = settings.staff_token.get_secret_value() if settings.staff_token is not None else ""
    if not expected:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=STAFF_TOKEN_UNSET)
    given = credentials.credentials if credentials is not None else ""
    # Bytes: compare_digest refuses str with non-ASCII characters, which a header may carry.
    if not given or not secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail=STAFF_TOKEN_INVALID, headers={"WWW-Authenticate": "Bearer"}
        )
    return Principal(role="staff", principal_id=STAFF_ID)


StaffDep = Annotated[Principal, Depends(require_staff)]
