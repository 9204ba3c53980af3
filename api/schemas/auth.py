"""Request and response bodies of `/api/auth`."""

from typing import Literal

from pydantic import BaseModel, Field

from crm_store.accounts import MAX_PASSWORD_CHARS


class LoginIn(BaseModel):
    """An employee's sign-in: their employee id and password."""

    username: str = Field(min_length=1, max_length=32, description="The employee id, e.g. `E03`.")
    # Not bounded below here: a too-short password is just a wrong one (401), never a hint (422).
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_CHARS * 4, description="The password.")


class TokenOut(BaseModel):
    """A signed token for `Authorization: Bearer`, and who it is for."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")
    employee_id: str
    role: str = Field(description="sales, manager, service or admin.")
    name: str
    region: str | None


class MeOut(BaseModel):
    """The signed-in employee, as the store knows them now."""

    employee_id: str
    role: str
    name: str
    region: str | None
