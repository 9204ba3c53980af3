"""Staff sign-in: signed, expiring bearer tokens, and who is behind each request.

`POST /api/auth/login` (api/routes/auth.py) checks an employee's password (`crm_store.accounts`)
and answers a JWT signed with HS256 (PyJWT). Its claims:

| claim | value                                                                          |
|-------|--------------------------------------------------------------------------------|
| `sub` | the employee id                                                                |
| `iat` | when it was issued                                                             |
| `exp` | `iat` + `CRM_TOKEN_TTL_S` (8 hours by default)                                 |
| `jti` | a random id, so that two tokens are never equal and logs can name one          |
| `pwd` | `crm_store.accounts.password_stamp`: a digest of the password hash at sign-in  |

A token proves who signed in, nothing more: on every request the actor is rebuilt from the store
(`crm_store.access.actor_for`), so role and region are those of today; an employee who was deleted,
or whose password changed since (the `pwd` claim no longer matches), is refused.

`StaffDep` is what every staff route declares: 401 with `WWW-Authenticate: Bearer` without a valid
token. `PrincipalDep` is for the chat: `CUSTOMER` without an `Authorization` header, the employee
with a valid token, 401 with any other header (a broken token must not quietly make staff a
customer).

The signing key is `CRM_JWT_SECRET`; unset, one is generated at first use into `var/jwt-secret`
(mode 0600, created atomically so that concurrent workers agree on it) and kept across restarts.
"""

import contextlib
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Final

import anyio.to_thread
import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from api.deps import SessionFactoryDep, SettingsDep
from api.schemas.common import ErrorDetail
from crm_store.access import CUSTOMER, Actor, actor_for
from crm_store.accounts import password_stamp
from crm_store.errors import NotFound, Unauthenticated
from crm_store.settings import VAR_DIR, ApiSettings

__all__ = [
    "ALGORITHM",
    "AUTH_ERRORS",
    "SECRET_FILE",
    "IssuedToken",
    "PrincipalDep",
    "StaffDep",
    "current_principal",
    "issue_token",
    "load_or_create_secret",
    "require_staff_actor",
    "signing_secret",
]

ALGORITHM: Final = "HS256"
SECRET_FILE: Final = VAR_DIR / "jwt-secret"
_SECRET_BYTES: Final = 48

AUTH_ERRORS: Final[dict[int | str, dict[str, object]]] = {
    401: {"model": ErrorDetail, "description": "Not signed in: no token, or an expired or invalid one."},
}
"""The OpenAPI `responses` every staff endpoint shares."""

_bearer = HTTPBearer(auto_error=False, description="员工登录令牌：POST /api/auth/login 返回的 access_token。")


def load_or_create_secret(path: Path) -> str:
    """The secret kept in `path`, generated there (mode 0600) if the file does not exist yet.

    Written to a private temporary file and linked into place, which fails if another process got
    there first: every worker then reads the same, complete secret.
    """
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(_SECRET_BYTES) + "\n")
        with contextlib.suppress(FileExistsError):  # another worker won: use its secret
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip()


_file_secrets: dict[Path, str] = {}


def signing_secret(settings: ApiSettings, *, secret_file: Path = SECRET_FILE) -> str:
    """`CRM_JWT_SECRET`, or the one kept in `var/jwt-secret` (read once per process)."""
    if settings.jwt_secret is not None and settings.jwt_secret.get_secret_value():
        return settings.jwt_secret.get_secret_value()
    if secret_file not in _file_secrets:
        _file_secrets[secret_file] = load_or_create_secret(secret_file)
    return _file_secrets[secret_file]


@dataclass(frozen=True)
class IssuedToken:
    """A signed token and how many seconds it lasts."""

    access_token: str
    expires_in: int


def issue_token(
    settings: ApiSettings, employee_id: str, stamp: str, *, now: datetime | None = None
) -> IssuedToken:
    """Sign a token for the employee; `stamp` is their `password_stamp` at sign-in."""
    issued = (now or datetime.now(UTC)).astimezone(UTC)
    ttl = settings.token_ttl_s
    claims: dict[str, Any] = {
        "sub": employee_id,
        "iat": issued,
        "exp": issued + timedelta(seconds=ttl),
        "jti": uuid.uuid4().hex,
        "pwd": stamp,
    }
    return IssuedToken(jwt.encode(claims, signing_secret(settings), algorithm=ALGORITHM), ttl)


def _claims(settings: ApiSettings, token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_secret(settings),
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp", "iat", "jti", "pwd"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("token_expired") from None
    except jwt.InvalidTokenError:
        raise Unauthenticated("token_invalid") from None
    if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("pwd"), str):
        raise Unauthenticated("token_invalid")
    return claims


def _actor(factory: sessionmaker[Session], employee_id: str, stamp: str) -> Actor:
    with factory() as session:
        current = password_stamp(session, employee_id)
        if current is None or not secrets.compare_digest(current, stamp):
            raise Unauthenticated("token_invalid")
        try:
            return actor_for(session, employee_id)
        except NotFound:
            raise Unauthenticated("token_invalid") from None


async def _staff_from_token(settings: ApiSettings, sessions: sessionmaker[Session], token: str) -> Actor:
    claims = _claims(settings, token)
    # Worker thread: the store is synchronous SQLAlchemy.
    return await anyio.to_thread.run_sync(partial(_actor, sessions, claims["sub"], claims["pwd"]))


async def require_staff_actor(
    settings: SettingsDep,
    sessions: SessionFactoryDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The signed-in employee, as the store knows them now.

    Raises:
        Unauthenticated: No bearer token ("token_missing"), an expired one ("token_expired"), or
            one that is forged, damaged, or issued before the password changed ("token_invalid").
    """
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("token_missing")
    return await _staff_from_token(settings, sessions, credentials.credentials)


async def current_principal(
    request: Request,
    settings: SettingsDep,
    sessions: SessionFactoryDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """Who is chatting: `CUSTOMER` without an `Authorization` header, else the signed-in employee.

    Raises:
        Unauthenticated: An `Authorization` header that is not a valid bearer token.
    """
    if "authorization" not in request.headers:
        return CUSTOMER
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("token_invalid")
    return await _staff_from_token(settings, sessions, credentials.credentials)


StaffDep = Annotated[Actor, Depends(require_staff_actor)]
"""The signed-in employee (401 otherwise); every staff route declares it."""
PrincipalDep = Annotated[Actor, Depends(current_principal)]
"""The chat's caller: `CUSTOMER` without a token, the employee with a valid one (401 with a bad one)."""
