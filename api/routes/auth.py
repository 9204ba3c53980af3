"""`/api/auth`: staff sign in with their employee id and password, and ask who they are.

`POST /api/auth/login` answers a signed, expiring bearer token (`api.auth`); a wrong employee id
or password is 401 with one message for both, too many failures in a row 423
(`crm_store.accounts`). Every attempt is audited, the password never. Whoever keeps failing past
the lock-out, for one employee id or from one address, gets 429 before the password is checked
(`api.rate_limit`).
"""

import logging
from functools import partial

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from api.auth import AUTH_ERRORS, StaffDep, issue_token
from api.deps import SessionFactoryDep, SettingsDep
from api.rate_limit import LOGIN_LIMITED_MESSAGE, RateLimitsDep, client_address
from api.schemas.auth import LoginIn, MeOut, TokenOut
from api.schemas.common import ErrorDetail
from crm_store.access import Actor
from crm_store.accounts import authenticate, password_stamp
from crm_store.errors import CrmError, Locked, Unauthenticated

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/auth", tags=["auth"])


def _sign_in(factory: sessionmaker[Session], username: str, password: str) -> tuple[Actor, str]:
    with factory() as session:
        try:
            actor = authenticate(session, username, password)
        except CrmError:
            # The failure count and its audit row are part of the answer: keep them.
            session.commit()
            raise
        stamp = password_stamp(session, username)
        session.commit()
    if stamp is None:  # pragma: no cover - authenticate admits only employees with a password
        raise Unauthenticated("login_failed")
    return actor, stamp


@router.post(
    "/login",
    summary="Sign in as an employee",
    response_model=TokenOut,
    responses={
        401: {"model": ErrorDetail, "description": "Unknown employee id or wrong password."},
        423: {"model": ErrorDetail, "description": "Too many failures in a row: locked for a while."},
        429: {
            "model": ErrorDetail,
            "description": "Too many failed sign-ins of this employee id or from this address; "
            "`Retry-After` in seconds.",
        },
    },
)
async def login(
    body: LoginIn, request: Request, settings: SettingsDep, sessions: SessionFactoryDep, limits: RateLimitsDep
) -> TokenOut | JSONResponse:
    """Check the password and answer a token for `Authorization: Bearer`."""
    address = client_address(request)
    refusal = await limits.login_refusal(body.username, address, settings)
    if refusal is not None:
        logger.warning("sign-in refused: too many failures for the employee id or the address")
        message = LOGIN_LIMITED_MESSAGE.format(minutes=refusal.retry_after_min)
        return JSONResponse(status_code=429, content={"detail": message}, headers=refusal.headers)
    try:
        actor, stamp = await anyio.to_thread.run_sync(
            partial(_sign_in, sessions, body.username, body.password)
        )
    except (Unauthenticated, Locked):
        await limits.login_failed(body.username, address, settings)
        raise
    assert actor.employee_id is not None and actor.name is not None  # an employee's actor
    token = issue_token(settings, actor.employee_id, stamp)
    logger.info("employee %s signed in", actor.employee_id)
    return TokenOut(
        access_token=token.access_token,
        expires_in=token.expires_in,
        employee_id=actor.employee_id,
        role=actor.role,
        name=actor.name,
        region=actor.region,
    )


@router.get("/me", summary="The signed-in employee", response_model=MeOut, responses=AUTH_ERRORS)
async def me(staff: StaffDep) -> MeOut:
    """Who the token belongs to, with the role and region the store holds now."""
    assert staff.employee_id is not None and staff.name is not None
    return MeOut(employee_id=staff.employee_id, role=staff.role, name=staff.name, region=staff.region)
